import { Marked, type Tokens } from 'marked';

// Markdown → HTML for the explainers in docs/explain/, at request time, with marked (GitHub-flavoured:
// tables, fenced code). The input is the repository's own docs, not user content, but raw HTML is
// still escaped so a stray `<` never becomes markup, with two trusted exceptions: `<div class="...">`
// / `</div>` lines (side-by-side columns), and images on a paragraph of their own, which a resolver
// may turn into inline SVG inside a <figure>. Headings get ids, so `#section` links land.

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

const DIV_LINE = /^<(\/)?div(?: class="([a-z0-9 -]+)")?>$/;

export function renderMarkdown(source: string, options: MarkdownOptions = {}): RenderedMarkdown {
  const img = (href: string, alt: string) => `<img src="${escapeHtml(href)}" alt="${escapeHtml(alt)}">`;
  const marked = new Marked({ gfm: true, async: false });
  marked.use({
    renderer: {
      heading({ tokens, depth, text }) {
        return `<h${depth} id="${slug(text)}">${this.parser.parseInline(tokens)}</h${depth}>\n`;
      },
      html({ text, block }) {
        const trusted = block && text.trim().split('\n').every((line) => DIV_LINE.test(line.trim()));
        return trusted ? text : escapeHtml(text);
      },
      link({ href, tokens }) {
        const label = this.parser.parseInline(tokens);
        const target = options.link ? options.link(href) : href;
        return target === null ? label : `<a href="${escapeHtml(target)}">${label}</a>`;
      },
      image({ href, text }) {
        return img(href, text);
      },
      paragraph({ tokens }) {
        const [only] = tokens;
        if (tokens.length !== 1 || only?.type !== 'image') return false; // marked's own <p>
        const { href, text } = only as Tokens.Image;
        return `<figure>${options.image?.(href, text) ?? img(href, text)}<figcaption>${escapeHtml(text)}</figcaption></figure>\n`;
      },
    },
  });
  const tokens = marked.lexer(source);
  const h1 = tokens.find((t): t is Tokens.Heading => t.type === 'heading' && t.depth === 1);
  return { title: h1?.text.replace(/`/g, ''), html: marked.parser(tokens) };
}
