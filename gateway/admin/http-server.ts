import type { Socket } from 'node:net';
import Fastify, { type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import { BadRequestTargetError, GatewayError, type ErrorCode } from '../../lib/errors.js';
import { parseRequestTarget } from '../../lib/request-target.js';
import { EndpointConflictError, EndpointNotFoundError } from '../core/registry.js';
import { HaproxyConfigRejectedError } from '../haproxy/front.js';
import { LoadBusyError, LoadNotLocalError } from './load.js';

// The admin server's HTTP layer, on fastify: what every route of it shares (the admin API in api.ts,
// the pages in pages.ts). Bodies are JSON or refused, validated by the routes' zod schemas, and every
// failure — thrown by a route, by a hook, by fastify itself or by the socket — answers
// `{ "error": { "code", "message" } }` with a status that says whose fault it is.

declare module 'fastify' {
  interface FastifyRequest {
    /** The request target as a URL (pathname, search), parsed once by the first hook. */
    target: URL;
  }
}

/** Request bodies larger than this are refused with 413 (a route may set less). */
export const BODY_LIMIT_BYTES = 64 * 1024;
/** A request (headers and body) must arrive whole within this, else 408 and the connection closes. */
export const REQUEST_TIMEOUT_MS = 10_000;

/** An error whose HTTP status the route chose. */
export class HttpError extends GatewayError {
  readonly status: number;
  constructor(status: number, code: ErrorCode, message: string) {
    super(code, message);
    this.status = status;
  }
}

interface ErrorAnswer {
  status: number;
  code: string;
  message: string;
}

/** A route's error as an answer: the client's faults are 4xx, anything unforeseen 500. */
function answerFor(err: unknown, request: FastifyRequest): ErrorAnswer {
  if (hasZodFastifySchemaValidationErrors(err)) {
    const issue = err.validation[0]!;
    const keys = (issue.params as { keys?: string[] }).keys;
    const field = issue.instancePath.slice(1).replaceAll('/', '.') || (issue.keyword === 'unrecognized_keys' && keys ? keys.join(', ') : 'body');
    return { status: 400, code: 'GW_ERR_BAD_REQUEST', message: `invalid field "${field}": ${issue.message}` };
  }
  const known = (status: number) => ({ status, code: (err as GatewayError).code, message: (err as Error).message });
  if (err instanceof HttpError) return known(err.status);
  if (err instanceof EndpointNotFoundError) return known(404);
  if (err instanceof EndpointConflictError || err instanceof HaproxyConfigRejectedError || err instanceof LoadBusyError) return known(409);
  if (err instanceof LoadNotLocalError) return known(403);
  if (err instanceof GatewayError) return known(500);
  // fastify's own refusals (FST_ERR_CTP_*: media type, size, content length, ...) carry their status.
  const fastifyStatus = (err as FastifyError).statusCode;
  if (fastifyStatus !== undefined && fastifyStatus >= 400 && fastifyStatus < 500) {
    if (fastifyStatus === 415) {
      const type = request.headers['content-type'];
      return { status: 415, code: 'GW_ERR_CONTENT_TYPE', message: `${request.method} bodies must be application/json (got ${type ?? 'no content-type'})` };
    }
    const message = fastifyStatus === 413 ? `body larger than ${request.routeOptions.bodyLimit ?? BODY_LIMIT_BYTES} bytes` : (err as Error).message;
    return { status: fastifyStatus, code: 'GW_ERR_BAD_REQUEST', message };
  }
  return { status: 500, code: 'GW_ERR_INTERNAL', message: (err as Error).message };
}

const errorBody = (code: string, message: string) => ({ error: { code, message } });

/** The raw answer for a request that never reached a route (timeout, unparseable): the socket then closes. */
function onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, text, code, message] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'Request Timeout', 'GW_ERR_BAD_REQUEST', `the request did not arrive whole within ${REQUEST_TIMEOUT_MS} ms`]
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', 'GW_ERR_BAD_REQUEST', 'request headers too large']
        : [400, 'Bad Request', 'GW_ERR_BAD_REQUEST', `unparseable request (${err.code ?? err.message})`];
  const body = JSON.stringify(errorBody(code, message)) + '\n';
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${text}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
  }
  socket.destroy();
}

/**
 * A fastify instance with the admin server's conventions; the caller adds its hooks and routes, then
 * listens. `log` receives the 500s; fastify's own lines (each request, listening, client disconnects)
 * only from warn up, since the callers log what matters themselves.
 */
export function createAdminHttpServer(log: Logger) {
  const app = Fastify({
    loggerInstance: log.child({}, { level: log.isLevelEnabled('warn') ? 'warn' : log.level }),
    bodyLimit: BODY_LIMIT_BYTES,
    // A client that promises a body and never sends it must not hold a connection (and its buffers);
    // Node enforces requestTimeout in a sweep every connectionsCheckingInterval (default 30 s).
    requestTimeout: REQUEST_TIMEOUT_MS,
    http: { connectionsCheckingInterval: 1_000, headersTimeout: REQUEST_TIMEOUT_MS },
    clientErrorHandler: onClientError,
    // Targets the router itself refuses (a malformed %-escape) get the same answer as parseRequestTarget's.
    frameworkErrors: (error, request, reply) => {
      const refused = new BadRequestTargetError(request.raw.url ?? '', error.message);
      void (reply as FastifyReply).code(400).send(errorBody(refused.code, refused.message));
    },
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // Pretty JSON with a final newline: the API is read with curl as often as by the dashboard.
  app.setReplySerializer((payload) => JSON.stringify(payload, null, 2) + '\n');

  // JSON or nothing: a foreign page can POST text/plain or a form without a CORS preflight, so any
  // other type (or a body with none) is refused, 415. An empty JSON body reads as {}.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, text, done) => {
    const source = String(text);
    if (!source.trim()) return done(null, {});
    try {
      done(null, JSON.parse(source));
    } catch {
      done(new HttpError(400, 'GW_ERR_BAD_REQUEST', 'body is not valid JSON'), undefined);
    }
  });

  // A request with no body at all reads as {} too, so a route's schema says what may be left out.
  app.addHook('preValidation', async (request) => {
    request.body ??= {};
  });

  // The router accepts targets RFC 9112 does not (`//[/x`); they are the client's error, 400, as on
  // every server of the project (lib/request-target.ts).
  app.decorateRequest('target', null as unknown as URL); // set by the hook below before any route runs
  app.addHook('onRequest', async (request) => {
    const target = parseRequestTarget(request.raw.url);
    if (!target.ok) throw new HttpError(400, target.error.code, target.error.message);
    request.target = target.url;
  });

  app.setErrorHandler((err, request, reply) => {
    const answer = answerFor(err, request);
    if (answer.status === 500) log.error({ err, url: request.url, method: request.method }, 'admin server error');
    return reply.code(answer.status).type('application/json').send(errorBody(answer.code, answer.message));
  });
  return app;
}

export type AdminHttpServer = ReturnType<typeof createAdminHttpServer>;
