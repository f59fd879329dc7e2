// Plain-text layout for terminals: what help and progress lines share, so both fit 80 columns.

/** The width every line a command prints is laid out for (terminals are at least this wide). */
export const COLUMNS = 80;

/** `text` as lines of at most `width` characters, each after `indent` spaces (a longer word stays whole). */
export function wrap(text: string, indent = 0, width = COLUMNS): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    if (line && indent + line.length + 1 + word.length > width) {
      lines.push(' '.repeat(indent) + line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(' '.repeat(indent) + line);
  return lines;
}

/** `text` cut to `width` characters, the cut marked with an ellipsis. */
export function fit(text: string, width = COLUMNS): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}…`;
}
