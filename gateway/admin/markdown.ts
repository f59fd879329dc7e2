// Markdown → HTML for the explainers in docs/explain/, at request time, with no dependency.
//
// Only the subset those files use: headings, paragraphs, fenced code, lists (one level), tables,
// block quotes, rules, images on a line of their own, and inline code / bold / italics / links.
// Everything else is escaped text. The input is the repository's own docs, not user content, but the
// renderer still escapes all text so a stray `<` never becomes markup. Two trusted escapes exist:
// `<div class="...">` / `</div>` lines (side-by-side columns) and images, which a resolver may turn
// into inline SVG.

export interface MarkdownOptions {
  /** Rewrite a link target (e.g. `other.md` → `/explain/other`); null → the label alone, unlinked. */
  link?: (href: string) => string | null;
  /** Inline an image (e.g. an SVG file's contents); undefined → a plain <img>. */
  image?: (src: string, alt: string) => string | undefined;
}

export interface RenderedMarkdown {
  /** Text of the first level-1 heading, if any. */
  title: string | undefined;
  html: string;
}

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/<[^>]+>/g, '')
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
}

/** Inline markup: code spans first (their content is literal, and may sit inside bold or a link), then the rest. */
export function renderInline(text: string, options: MarkdownOptions = {}): string {
  const codes: string[] = [];
  // Code spans become placeholders (NUL never occurs in the docs), so `**`code`**` still reads as bold code.
  let html = escapeHtml(text.replace(/`([^`]+)`/g, (_m, code: string) => `\u0000${codes.push(code) - 1}\u0000`));
  html = html.replace(/\[([^\]]+)\]\(([^)\s]+)\)/g, (_m, label: string, href: string) => {
    const target = options.link ? options.link(href.replace(/&amp;/g, '&')) : href;
    return target === null ? label : `<a href="${escapeHtml(target)}">${label}</a>`;
  });
  html = html.replace(/\*\*([^*]+)\*\*/g, '<strong>$1</strong>');
  html = html.replace(/(^|[\s(])\*([^*\s][^*]*)\*(?=[\s).,;:!?]|$)/g, '$1<em>$2</em>');
  html = html.replace(/(^|[\s(])_([^_\s][^_]*)_(?=[\s).,;:!?]|$)/g, '$1<em>$2</em>');
  return html.replace(/\u0000(\d+)\u0000/g, (_m, i: string) => `<code>${escapeHtml(codes[Number(i)]!)}</code>`);
}

function splitRow(line: string): string[] {
  const trimmed = line.trim().replace(/^\|/, '').replace(/\|$/, '');
  // A `|` inside a code span does not split cells.
  const cells: string[] = [];
  let current = '';
  let inCode = false;
  for (const ch of trimmed) {
    if (ch === '`') inCode = !inCode;
    if (ch === '|' && !inCode) {
      cells.push(current.trim());
      current = '';
    } else {
      current += ch;
    }
  }
  cells.push(current.trim());
  return cells;
}

const DIV_LINE = /^<(\/)?div(?: class="([a-z0-9 -]+)")?>$/;
const IMAGE_LINE = /^!\[([^\]]*)\]\(([^)\s]+)\)$/;
const LIST_ITEM = /^(\s*)([-*]|\d+\.)\s+(.*)$/;

export function renderMarkdown(source: string, options: MarkdownOptions = {}): RenderedMarkdown {
  const lines = source.replace(/\r\n/g, '\n').split('\n');
  const out: string[] = [];
  let title: string | undefined;
  let i = 0;
  const inline = (t: string) => renderInline(t, options);
  const isBlank = (l: string | undefined) => l === undefined || l.trim() === '';
  const startsBlock = (l: string) =>
    /^(#{1,6}\s|```|>|\||---\s*$)/.test(l) || LIST_ITEM.test(l) || DIV_LINE.test(l.trim()) || IMAGE_LINE.test(l.trim());

  while (i < lines.length) {
    const line = lines[i]!;
    const trimmed = line.trim();
    if (trimmed === '') {
      i++;
      continue;
    }
    const heading = /^(#{1,6})\s+(.*)$/.exec(line);
    if (heading) {
      const level = heading[1]!.length;
      const text = heading[2]!.trim();
      if (level === 1 && title === undefined) title = text.replace(/`/g, '');
      out.push(`<h${level} id="${slug(text)}">${inline(text)}</h${level}>`);
      i++;
      continue;
    }
    if (line.startsWith('```')) {
      const lang = line.slice(3).trim();
      const body: string[] = [];
      i++;
      while (i < lines.length && !lines[i]!.startsWith('```')) body.push(lines[i++]!);
      i++; // closing fence
      out.push(`<pre${lang ? ` class="lang-${escapeHtml(lang)}"` : ''}><code>${escapeHtml(body.join('\n'))}</code></pre>`);
      continue;
    }
    const div = DIV_LINE.exec(trimmed);
    if (div) {
      out.push(div[1] ? '</div>' : `<div class="${escapeHtml(div[2] ?? '')}">`);
      i++;
      continue;
    }
    const image = IMAGE_LINE.exec(trimmed);
    if (image) {
      const [, alt = '', src = ''] = image;
      const inlined = options.image?.(src, alt);
      out.push(`<figure>${inlined ?? `<img src="${escapeHtml(src)}" alt="${escapeHtml(alt)}">`}<figcaption>${inline(alt)}</figcaption></figure>`);
      i++;
      continue;
    }
    if (/^---\s*$/.test(line)) {
      out.push('<hr>');
      i++;
      continue;
    }
    if (line.startsWith('>')) {
      const body: string[] = [];
      while (i < lines.length && lines[i]!.startsWith('>')) body.push(lines[i++]!.replace(/^>\s?/, ''));
      out.push(`<blockquote>${renderMarkdown(body.join('\n'), options).html}</blockquote>`);
      continue;
    }
    if (line.trimStart().startsWith('|') && /^\s*\|?\s*:?-{3,}/.test(lines[i + 1] ?? '')) {
      const header = splitRow(line);
      const align = splitRow(lines[i + 1]!).map((c) => (c.endsWith(':') ? (c.startsWith(':') ? 'center' : 'right') : ''));
      i += 2;
      const rows: string[][] = [];
      while (i < lines.length && lines[i]!.trimStart().startsWith('|')) rows.push(splitRow(lines[i++]!));
      const cell = (tag: 'th' | 'td', text: string, col: number) =>
        `<${tag}${align[col] ? ` style="text-align:${align[col]}"` : ''}>${inline(text)}</${tag}>`;
      out.push(
        `<table><thead><tr>${header.map((h, c) => cell('th', h, c)).join('')}</tr></thead><tbody>` +
          rows.map((r) => `<tr>${r.map((t, c) => cell('td', t, c)).join('')}</tr>`).join('') +
          '</tbody></table>',
      );
      continue;
    }
    const item = LIST_ITEM.exec(line);
    if (item) {
      const ordered = /\d/.test(item[2]!);
      const items: string[] = [];
      while (i < lines.length) {
        const m = LIST_ITEM.exec(lines[i]!);
        if (m) {
          items.push(m[3]!);
          i++;
        } else if (!isBlank(lines[i]) && /^\s+/.test(lines[i]!)) {
          items[items.length - 1] += ' ' + lines[i]!.trim(); // continuation line
          i++;
        } else {
          break;
        }
      }
      const tag = ordered ? 'ol' : 'ul';
      out.push(`<${tag}>${items.map((t) => `<li>${inline(t)}</li>`).join('')}</${tag}>`);
      continue;
    }
    const para: string[] = [];
    while (i < lines.length && !isBlank(lines[i]) && (para.length === 0 || !startsBlock(lines[i]!))) para.push(lines[i++]!.trim());
    out.push(`<p>${inline(para.join(' '))}</p>`);
  }
  return { title, html: out.join('\n') };
}
