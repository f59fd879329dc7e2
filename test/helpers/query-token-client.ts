// A client process for test/secrets.test.ts, run at LOG_LEVEL=debug: over each transport it keeps
// a session whose request target carries the token in its query (`/echo?token=<jwt>`, as browsers
// do, since they cannot set headers on a WebSocket), has the backends close it so the keeper
// reopens it (a debug line with the path), and opens one without a bearer header, which is refused
// (an error whose message names the path). The test reads every line it wrote.
//   FRONT_URL      where to connect
//   BACKEND_URLS   comma-separated backends, to POST /close-sessions to
//   CLIENT_JWT     a valid token, sent both in the query and as the bearer header
import { H1Client, MuxClient, type WsClient } from '../../client/index.js';
import { SessionKeeper } from '../../client/session-keeper.js';
import { logger } from '../../lib/log.js';

const log = logger('query-token-client');
const frontUrl = process.env.FRONT_URL!;
const backendUrls = process.env.BACKEND_URLS!.split(',');
const jwt = process.env.CLIENT_JWT!;
const withToken = (path: string) => `${path}?token=${jwt}`;

for (const client of [new MuxClient(frontUrl), new H1Client(frontUrl)] as WsClient[]) {
  const keeper = new SessionKeeper(client, { open: { headers: { authorization: `Bearer ${jwt}` } }, initialBackoffMs: 10 });
  const kept = await keeper.keep(withToken('/echo'));
  const reopened = new Promise((resolve) => kept.once('open', resolve));
  await Promise.all(backendUrls.map((url) => fetch(`${url}/close-sessions`, { method: 'POST' })));
  await reopened;
  try {
    await client.open(withToken('/echo'));
    log.error('opened without a bearer header: the backends do not check tokens');
  } catch (err) {
    log.warn({ err, path: withToken('/echo') }, 'open refused, as expected');
  }
  keeper.close();
  await client.close();
}
process.stdout.write('query-token-client done\n');
