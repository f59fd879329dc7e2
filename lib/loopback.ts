/** 127.0.0.0/8, ::1, localhost (and IPv4-mapped 127.x): the addresses this project treats as "this machine only". */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\./.test(h) || /^::ffff:127\./.test(h);
}

/** The address to dial for a listener bound to `host`: a wildcard bind (0.0.0.0, ::) is reached on loopback. */
export function dialHost(host: string): string {
  const h = host.replace(/^\[|\]$/g, '');
  if (h === '0.0.0.0') return '127.0.0.1';
  if (h === '::') return '::1';
  return host;
}
