import { describe, expect, it } from 'vitest';
import { parseRequestTarget } from '../lib/request-target.js';

// The request-target parser every server uses: total (a value or a typed error, never a throw),
// and a path is a path — "//x/echo" must not reach /echo.

const parsed = (target: string | undefined) => {
  const r = parseRequestTarget(target);
  return r.ok ? r.url.pathname + r.url.search : r.error.code;
};

describe('parseRequestTarget', () => {
  it('refuses targets that are not RFC 9112 origin-, absolute- or asterisk-form, with GW_ERR_BAD_REQUEST_TARGET', () => {
    const bad = ['//%zz/echo', '//[/x', '/echo?room=%zz', '/%', '/x|y', 'http://%zz/echo', 'http://[/x', 'echo', 'host:443', ''];
    expect(Object.fromEntries(bad.map((t) => [t, parsed(t)]))).toEqual(Object.fromEntries(bad.map((t) => [t, 'GW_ERR_BAD_REQUEST_TARGET'])));
  });

  it('keeps every segment of an origin-form path, including an empty first one', () => {
    expect(parsed('//x/echo')).toBe('//x/echo');
    expect(parsed('//1.2.3.256/echo')).toBe('//1.2.3.256/echo');
  });

  it('reads the usual targets as before: path, query, dot segments, absolute-form, *', () => {
    expect(parsed(undefined)).toBe('/');
    expect(parsed('/chat/ok?since=1732390000000-0')).toBe('/chat/ok?since=1732390000000-0');
    expect(parsed('/chat/bad%20room')).toBe('/chat/bad%20room');
    expect(parsed('/a/../echo')).toBe('/echo');
    expect(parsed('http://example.com/feed?rate=5')).toBe('/feed?rate=5');
    expect(parsed('*')).toBe('/*');
  });

  it('carries the target (at most 200 characters of it) in the error message', () => {
    const r = parseRequestTarget(`//%zz/${'a'.repeat(500)}`);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.message).toMatch(/^bad request target "\/\/%zz\/a{194}": /);
  });
});
