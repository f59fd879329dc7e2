/** 127.0.0.0/8, ::1, localhost (and IPv4-mapped 127.x): the addresses this project treats as "this machine only". */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\./.test(h) || /^::ffff:127\./.test(h);
}
