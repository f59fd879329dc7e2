import type http from 'node:http';
import type { z } from 'zod';
import { GatewayError, type ErrorCode } from '../../lib/errors.js';

// JSON over HTTP for the admin server's routes (admin API and web): one error type that carries its
// status, one bounded body reader, one validator whose message names the bad field.

export class HttpError extends GatewayError {
  readonly status: number;
  constructor(status: number, code: ErrorCode, message: string) {
    super(code, message);
    this.status = status;
  }
}

export async function readJsonBody(req: http.IncomingMessage, limit = 64 * 1024): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > limit) throw new HttpError(413, 'GW_ERR_BAD_REQUEST', `body larger than ${limit} bytes`);
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof HttpError) throw err;
    // The server's requestTimeout, or the client leaving: a bad request, not a server fault.
    throw new HttpError(408, 'GW_ERR_BAD_REQUEST', `the body did not arrive whole (${(err as Error).message})`);
  }
  const text = Buffer.concat(chunks).toString();
  if (!text.trim()) return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new HttpError(400, 'GW_ERR_BAD_REQUEST', 'body is not valid JSON');
  }
}

/** Validate a request body; a failure is a 400 naming the field. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  const result = schema.safeParse(body);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const field = issue.path.join('.') || (issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : 'body');
    throw new HttpError(400, 'GW_ERR_BAD_REQUEST', `invalid field "${field}": ${issue.message}`);
  }
  return result.data;
}
