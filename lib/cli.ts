import { parseArgs } from 'node:util';
import { z } from 'zod';
import { envName, fieldType, flagError, innerSchema, kebab, loadConfig, SECRET_FIELDS } from './config.js';
import { ConfigError, UsageError } from './errors.js';
import { wrap } from './text.js';

// The command line of every command (npm start, the demos, the helpers, the bench): one parser and
// one `--help`, generated from the config schema (lib/config.ts) and each command's own options, so
// help lists exactly the flags a command takes, with their defaults and environment variables.
//
// A command is two zod objects: `config`, fields of the one config schema (a flag, or an env var;
// usually gatewaySchema or a .pick() of it), and `options`, flags of that command alone (no env
// var). Each field's `.describe()` is its help line. A user mistake (unknown flag, bad value) is one
// line on stderr naming the flag, and exit code 2; no stack trace.

export interface Command<C extends z.ZodObject = z.ZodObject, O extends z.ZodObject = z.ZodObject> {
  /** How a user runs it: `npm start`, `npm run endpoints`. */
  name: string;
  /** What follows `--` in the usage line; default `[options]`. */
  synopsis?: string;
  /** What the command does, a few sentences (wrapped to 80 columns). */
  about: string;
  /** Config fields it takes, each as `--kebab-name` or its env var. */
  config?: C;
  /** Read config fields from the environment too (default true). */
  env?: boolean;
  /** The command's own flags (never from the environment). */
  options?: O;
  /** Whether it takes positional arguments (a subcommand, files). */
  positionals?: boolean;
  /** Text after the flags: subcommands, examples. */
  epilog?: string;
}

/** A command, its config and option types inferred from the literal. */
export const defineCommand = <C extends z.ZodObject = z.ZodObject<{}>, O extends z.ZodObject = z.ZodObject<{}>>(command: Command<C, O>): Command<C, O> => command;

export interface CommandLine<C extends z.ZodObject, O extends z.ZodObject> {
  config: Readonly<z.infer<C>>;
  options: Readonly<z.infer<O>>;
  positionals: string[];
  /** Config fields set by a flag or an env var (the rest are defaults). */
  given: ReadonlySet<string>;
}

const NONE = z.object({});

/** An option that takes no value (`--quick`): a plain z.boolean() among a command's options. */
const isSwitch = (schema: z.ZodType) => fieldType(schema) === 'boolean';

/** What to write after the flag in help: its values, or the kind of value. */
function valueHint(key: string, schema: z.ZodType, option: boolean): string {
  const inner = innerSchema(schema);
  const type = fieldType(schema);
  if (type === 'enum') return (inner as z.ZodEnum).options.join('|');
  if (type === 'boolean') return option ? '' : '[true|false]';
  if (type === 'array') return /Ports$/.test(key) ? 'PORT,…' : 'A,B,…';
  if (type === 'number') return /Port$/.test(key) ? 'PORT' : 'N';
  if (/Url$|^admin$/.test(key) || (inner as unknown as { _zod: { def: { format?: string } } })._zod.def.format === 'url') return 'URL';
  if (key === 'host') return 'ADDRESS';
  if (/(Dir|Cert|Key|Template|Bin|File)$/.test(key)) return 'PATH';
  return 'TEXT';
}

function defaultText(schema: z.ZodType): string {
  const r = schema.safeParse(undefined);
  if (!r.success) return 'required';
  const v: unknown = r.data;
  if (v === undefined) return 'unset';
  if (Array.isArray(v)) return v.length ? v.join(',') : "''";
  if (v === '') return "''";
  return String(v);
}

function flagLines(shape: Record<string, z.ZodType>, option: boolean, env: boolean): string[] {
  return Object.entries(shape).flatMap(([key, schema]) => {
    const hint = valueHint(key, schema, option);
    const byDefault = defaultText(schema);
    // An option left unset has no default to show (its description says what happens).
    const where = [env ? envName(key) : '', option && byDefault === 'unset' ? '' : `default ${byDefault}`].filter(Boolean).join(', ');
    // A secret is taken from the environment or a file only (lib/config.ts SECRET_FIELDS).
    const [flagText, whereText] = Object.hasOwn(SECRET_FIELDS, key)
      ? [`  --${kebab(key)}-file PATH`, `${envName(key)} or ${envName(key)}_FILE`]
      : [`  --${kebab(key)}${hint ? ` ${hint}` : ''}`, where];
    const oneLine = `${flagText}${whereText ? `  (${whereText})` : ''}`;
    // 80 columns: a long flag puts its (variable, default) on a line of its own.
    const head = oneLine.length <= 80 || !whereText ? [oneLine] : [flagText, `      (${whereText})`];
    return [...head, ...wrap(schema.description ?? '', 6)];
  });
}

/** `--help`: usage line, what it does, every flag with its default (and env var), then the epilog. */
function usageText(command: Command): string {
  const env = command.env !== false;
  const out = [`usage: ${command.name} -- ${command.synopsis ?? '[options]'}`, '', ...wrap(command.about), ''];
  const options = command.options?.shape ?? {};
  out.push('options:', '  --help, -h  this text', ...flagLines(options, true, false));
  const config = command.config?.shape ?? {};
  if (Object.keys(config).length > 0) {
    out.push('', env ? 'config (a flag, or the environment variable named; a flag wins):' : 'config:', ...flagLines(config, false, env));
  }
  if (command.epilog) out.push('', ...command.epilog.split('\n'));
  return out.join('\n') + '\n';
}

/**
 * Parse `argv` (and `env`) for `command`: `{ help }` when --help/-h was asked for, else the config,
 * the options and the positionals. Throws UsageError or ConfigError for a user mistake.
 */
export function parseCommandLine<C extends z.ZodObject, O extends z.ZodObject>(
  command: Command<C, O>,
  argv: readonly string[] = process.argv.slice(2),
  env: NodeJS.ProcessEnv = process.env,
): CommandLine<C, O> | { help: string } {
  const end = argv.indexOf('--');
  const own = end >= 0 ? argv.slice(0, end) : argv;
  if (own.includes('--help') || own.includes('-h')) return { help: usageText(command as unknown as Command) };

  const optionShape = (command.options?.shape ?? {}) as Record<string, z.ZodType>;
  const extra: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const [key, schema] of Object.entries(optionShape)) extra[kebab(key)] = { type: isSwitch(schema) ? 'boolean' : 'string' };

  // loadConfig reads flags only: positionals are split out first, by the same parser.
  let positionals: string[] = [];
  let flagArgs: readonly string[] = argv;
  if (command.positionals) {
    const all = { ...extra, ...Object.fromEntries(Object.keys(command.config?.shape ?? {}).map((k) => [kebab(k), { type: 'string' as const }])) };
    let tokens;
    try {
      tokens = parseArgs({ args: [...argv], options: all, strict: true, allowPositionals: true, tokens: true }).tokens;
    } catch (err) {
      throw flagError(err, Object.keys(all));
    }
    const notFlags = new Set(tokens.filter((t) => t.kind !== 'option').map((t) => t.index));
    positionals = tokens.flatMap((t) => (t.kind === 'positional' ? [t.value] : []));
    flagArgs = argv.filter((_, i) => !notFlags.has(i));
  }

  const { config, flags, given } = loadConfig(command.config ?? NONE, flagArgs, command.env === false ? {} : env, extra);
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(optionShape)) if (flags[kebab(key)] !== undefined) raw[key] = flags[kebab(key)];
  const result = (command.options ?? NONE).safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const key = String(issue.path[0] ?? '');
    const got = raw[key] === undefined ? '' : ` (got ${JSON.stringify(raw[key])})`;
    throw new UsageError(`--${kebab(key)}: ${issue.message}${got}`);
  }
  return { config: config as Readonly<z.infer<C>>, options: Object.freeze(result.data) as Readonly<z.infer<O>>, positionals, given };
}

/** A mistake in what the user typed or set, as opposed to a failure of the command itself. */
export const isUserMistake = (err: unknown): err is UsageError | ConfigError => err instanceof UsageError || err instanceof ConfigError;

/** One line naming the mistake, where to read the flags, and exit code 2. */
export function exitOnMistake(command: Pick<Command, 'name'>, err: UsageError | ConfigError): never {
  process.stderr.write(`${command.name}: ${err.message}\n(${command.name} -- --help lists every flag)\n`);
  process.exit(2);
}

/** parseCommandLine for a process: prints help and exits 0, or a user mistake and exits 2. */
export function commandLine<C extends z.ZodObject, O extends z.ZodObject>(
  command: Command<C, O>,
  argv: readonly string[] = process.argv.slice(2),
  env: NodeJS.ProcessEnv = process.env,
): CommandLine<C, O> {
  let parsed;
  try {
    parsed = parseCommandLine(command, argv, env);
  } catch (err) {
    if (isUserMistake(err)) exitOnMistake(command, err);
    throw err;
  }
  if ('help' in parsed) {
    process.stdout.write(parsed.help);
    process.exit(0);
  }
  return parsed;
}
