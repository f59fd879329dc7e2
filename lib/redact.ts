// What a log line or an error message may show of a request target or a URL. Clients put tokens in
// query strings (`/chat/room?token=<jwt>`: browsers cannot set headers on a WebSocket) and Redis
// URLs carry their password (`redis://:<password>@host:port`), so before either is written anywhere:
//   - every query parameter keeps its name and loses its value: `?token=[redacted]&since=[redacted]`
//     (deny by default: a value this project does not know to be harmless is treated as a secret);
//   - a URL's password becomes `[redacted]`; the user name, host and port stay (they say where).
// The path stays: it names the route and the room, which is what a log reader needs.

export const REDACTED = '[redacted]';

// A query starts at a `?` followed by a character that can begin one (so prose such as "port?)"
// stays as it is) and runs to whitespace or a character no URL contains unescaped — a quote ends
// it, so a target inside JSON or a quoted HAProxy request line keeps its closing quote.
const QUERY = /\?([\w\-.~%=&][^\s"\\<>{}|^`]*)/g;
// scheme://user:password@ — the password up to the authority's last `@` (an unescaped `@` in a
// password is invalid, but URL parsers take the last one, and so must this).
const USERINFO_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^\s/?#@:"]*:)[^\s/?#"]*@/gi;

function redactQuery(query: string): string {
  return query
    .split('&')
    .map((part) => {
      const eq = part.indexOf('=');
      return eq < 0 ? REDACTED : `${part.slice(0, eq)}=${REDACTED}`;
    })
    .join('&');
}

/** `text` (a path, a URL, a log line, an error message) with query values and URL passwords replaced. */
export function redactSecrets(text: string): string {
  return text.replace(USERINFO_PASSWORD, `$1${REDACTED}@`).replace(QUERY, (_, query: string) => `?${redactQuery(query)}`);
}
