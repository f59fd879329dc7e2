// `npm run h2-stall`, the reproduction of HAProxy 2.6's `proto h2` upstream stall, as a user runs it.
// Only the control is asserted end to end: HTTP/1.1 to the backend does not stall. Whether the HTTP/2
// case stalls within a given run is not deterministic, so it is not asserted here; the script's own
// output says which happened (docs/explain/flow-control.md has a real run of each).
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeShowFd } from '../scripts/h2-upstream-stall.js';

const repo = path.resolve(import.meta.dirname, '..');

async function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // As a user runs it: no LOG_LEVEL, so the script's own default (warn) keeps info logs off the terminal.
  const { LOG_LEVEL: _level, ...env } = process.env;
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/h2-upstream-stall.ts', ...args], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, stdout, stderr };
}

describe('npm run h2-stall', () => {
  it('--upstream h1 (the control): echoes every second, "no stall", exit 0', { timeout: 90_000 }, async () => {
    const { code, stdout, stderr } = await run(['--upstream', 'h1', '--seconds', '3', '--sessions', '20', '--in-flight-kib', '64']);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/^h2-stall: 20 sessions on 1 HTTP\/2 connection → HAProxy \S+ \(HTTP\/1\.1 to the backend\) → one backend/m);
    expect(stdout).toContain('each keeps 4 × 16 KiB = 64 KiB in flight');
    expect(stdout).toMatch(/^ +1 s +[\d,]+ echoes\/s +[\d,]+ in all$/m);
    const done = /^no stall: ([\d,]+) echoes in \d+ s/m.exec(stdout);
    expect(done, stdout).not.toBeNull();
    expect(Number(done![1]!.replace(/,/g, ''))).toBeGreaterThan(0);
    expect(stdout).not.toContain('STALLED');
    expect(stdout).toMatch(/^Verdict: HTTP\/1\.1 to the backend/m);
    // The report only: no log line on the terminal.
    expect(stdout.split('\n').filter((l) => l.startsWith('{'))).toEqual([]);
  });

  it('--haproxy-global with --front envoy is a usage mistake (exit 2), before anything starts', async () => {
    const { code, stderr } = await run(['--front', 'envoy', '--haproxy-global', 'tune.bufsize 65536']);
    expect(code).toBe(2);
    expect(stderr).toContain('--haproxy-global: only with --front haproxy');
  });

  it("decodes HAProxy 2.6's `show fd` line of an HTTP/2 connection (a real one, from a stall)", () => {
    const back =
      '15 : st=0x010122(cL heopI W:sRa R:sRa) ref=0 gid=1 tmask=0x2 umask=0x0 prmsk=0x0 pwmsk=0x0 owner=0x7ff23c208750 ' +
      'iocb=0x55ba8d38f820(sock_conn_iocb) back=1 cflg=0x00000300 cerr=0 fam=ipv4 lport=39286 rport=21047 sv=backends/b1 mux=H2 ' +
      'ctx=0x7ff23c208970 h2c.st0=FRP .err=0 .maxid=1 .lastid=-1 .flg=0x118480 .nbst=1 .nbcs=1 .fctl_cnt=0 .send_cnt=0 .tree_cnt=1 ' +
      '.orph_cnt=0 .sub=0 .dsi=1 .dbuf=124@0x7ff23c1f5f90+16334/16384 .msi=-1 .mbuf=[1..1|32],h=[0@0x7ff23c3eb150+0/16384],' +
      't=[0@0x7ff23c3eb150+0/16384] .task=0x7ff23c208ea0 .exp=<NEVER> last_h2s=0x7ff23c209fd0 .id=1 .st=OPN .flg=0xc7480 ' +
      '.rxbuf=16384@0x7ff23c0ceae0+0/16384 .sc=0x7ff23c046490(.flg=0x00000211 .app=0x7ff23c0460a0)sd=0x7ff23c046500(.flg=0x00180001) xprt=RAW';
    expect(decodeShowFd(back)).toEqual({ back: true, streams: '1', fctl: '0', send: '0', connFlags: ['H2_CF_DEM_SFULL'], streamFlags: ['H2_SF_BLK_SFCTL'] });
    const front = back.replace('.flg=0x118480 .nbst=1', '.flg=0x10480 .nbst=100').replace('.send_cnt=0', '.send_cnt=100').replace('.flg=0xc7480', '.flg=0x7400');
    expect(decodeShowFd(front)).toMatchObject({ back: false, streams: '100', send: '100', connFlags: ['H2_CF_DEM_SFULL'], streamFlags: [] });
  });
});
