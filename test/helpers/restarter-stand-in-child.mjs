// A stand-in for the process the Envoy restarter starts, used by test/envoy-restarter.test.ts to
// test the RESTARTER's process logic. It is not Envoy and imitates none of Envoy's networking or
// its hot-restart RPC; it only records what the restarter does to it.
//
// Every record is one JSON line appended to the file named by STAND_IN_LOG:
//   {event: 'start'|'validate'|'signal'|'exit'|'crash', pid, epoch, baseId, t, ...}
// `start` carries argv and RESTART_EPOCH; `signal` carries the signal name.
//
// Behaviour, chosen through the environment:
//   SIGTERM / SIGINT             record, exit 0 (like Envoy's shutdown).
//   other signals                record, keep running.
//   --mode validate in argv      record `validate`, exit 0; or print the content of
//                                STAND_IN_VALIDATE_FAIL_FILE to stderr and exit 1 if that file exists.
//   STAND_IN_CRASH_EPOCH=N       the child at epoch N exits with STAND_IN_CRASH_CODE (default 3)
//   STAND_IN_CRASH_AFTER_MS=ms     ms after it started (default 200).
//   STAND_IN_PARENT_SHUTDOWN=1   imitates the parent shutdown: a child at epoch N>0 waits its own
//                                --parent-shutdown-time-s, then tells epoch N-1 (same --base-id,
//                                found in the log) to exit with SIGUSR2; that one records
//                                `exit` with reason parent-shutdown and exits 0.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';

const logFile = process.env.STAND_IN_LOG;
if (!logFile) {
  process.stderr.write('restarter-stand-in-child: STAND_IN_LOG is not set\n');
  process.exit(64);
}

const argv = process.argv.slice(2);
const flag = (name) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
};
const epoch = Number(flag('--restart-epoch') ?? -1);
const baseId = flag('--base-id') ?? null;

function record(event, extra = {}) {
  appendFileSync(logFile, `${JSON.stringify({ event, pid: process.pid, epoch, baseId, t: Date.now(), ...extra })}\n`);
}

if (flag('--mode') === 'validate') {
  record('validate', { argv });
  const failFile = process.env.STAND_IN_VALIDATE_FAIL_FILE;
  if (failFile && existsSync(failFile)) {
    process.stderr.write(`stand-in validate: ${readFileSync(failFile, 'utf8')}\n`);
    process.exit(1);
  }
  process.exit(0);
}

record('start', { argv, restartEpochEnv: process.env.RESTART_EPOCH ?? null });

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2']) {
  process.on(sig, () => {
    record('signal', { signal: sig });
    if (sig === 'SIGTERM' || sig === 'SIGINT') {
      record('exit', { reason: sig, code: 0 });
      process.exit(0);
    }
    if (sig === 'SIGUSR2') {
      record('exit', { reason: 'parent-shutdown', code: 0 });
      process.exit(0);
    }
  });
}

if (process.env.STAND_IN_CRASH_EPOCH !== undefined && Number(process.env.STAND_IN_CRASH_EPOCH) === epoch) {
  const code = Number(process.env.STAND_IN_CRASH_CODE ?? 3);
  setTimeout(() => {
    record('crash', { code });
    process.exit(code);
  }, Number(process.env.STAND_IN_CRASH_AFTER_MS ?? 200));
}

if (process.env.STAND_IN_PARENT_SHUTDOWN === '1' && epoch > 0) {
  const afterMs = Number(flag('--parent-shutdown-time-s') ?? 0) * 1000;
  setTimeout(() => {
    const parent = readFileSync(logFile, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l))
      .filter((r) => r.event === 'start' && r.epoch === epoch - 1 && r.baseId === baseId)
      .at(-1);
    if (!parent) return;
    record('parent-shutdown-sent', { to: parent.pid });
    try {
      process.kill(parent.pid, 'SIGUSR2');
    } catch {
      // already gone
    }
  }, afterMs);
}

// Stay alive until told otherwise.
setInterval(() => {}, 1 << 30);
