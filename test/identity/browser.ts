// Just enough of a browser to walk OAuth pages over HTTP: a cookie jar, redirects, and HTML forms.
// Cookie paths and ports are ignored (all tests run on 127.0.0.1): every cookie goes with every request.

export interface Page {
  url: string;
  status: number;
  body: string;
  headers: Headers;
}

const MAX_REDIRECTS = 20;

export class Browser {
  readonly cookies = new Map<string, string>();

  /** GET `url`, following redirects; `stopAt` ends the walk before requesting a matching URL. */
  get(url: string, stopAt?: (url: URL) => boolean): Promise<Page> {
    return this.request(url, { method: "GET" }, stopAt);
  }

  post(url: string, form: Record<string, string>, stopAt?: (url: URL) => boolean): Promise<Page> {
    return this.request(
      url,
      {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(form).toString(),
      },
      stopAt,
    );
  }

  /** Submit the page's first form: its hidden inputs plus `fields`. */
  submitForm(page: Page, fields: Record<string, string>, stopAt?: (url: URL) => boolean): Promise<Page> {
    const form = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(page.body);
    if (!form) throw new Error(`no form on ${page.url} (HTTP ${page.status}):\n${page.body.slice(0, 1500)}`);
    const action = attr(form[1] ?? "", "action") ?? page.url;
    const values: Record<string, string> = {};
    for (const input of (form[2] ?? "").matchAll(/<input\b([^>]*)>/gi)) {
      const name = attr(input[1] ?? "", "name");
      if (name && attr(input[1] ?? "", "type") === "hidden") values[name] = attr(input[1] ?? "", "value") ?? "";
    }
    return this.post(new URL(action, page.url).toString(), { ...values, ...fields }, stopAt);
  }

  /** One request with the jar's cookies; redirects followed (a POST answered by 302/303 continues as GET). */
  async request(url: string, init: RequestInit, stopAt?: (url: URL) => boolean): Promise<Page> {
    let current = new URL(url);
    let next: RequestInit = init;
    for (let hop = 0; hop < MAX_REDIRECTS; hop++) {
      const res = await fetch(current, {
        ...next,
        redirect: "manual",
        headers: { ...(next.headers as Record<string, string> | undefined), cookie: this.cookieHeader() },
      });
      this.store(res.headers.getSetCookie());
      const location = res.headers.get("location");
      if (res.status >= 300 && res.status < 400 && location) {
        await res.body?.cancel();
        const target = new URL(location, current);
        if (stopAt?.(target)) return { url: target.toString(), status: res.status, body: "", headers: res.headers };
        current = target;
        next = res.status === 307 || res.status === 308 ? next : { method: "GET" };
        continue;
      }
      return { url: current.toString(), status: res.status, body: await res.text(), headers: res.headers };
    }
    throw new Error(`too many redirects from ${url}`);
  }

  cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }

  private store(setCookies: string[]): void {
    for (const line of setCookies) {
      const [pair = "", ...attrs] = line.split(";");
      const eq = pair.indexOf("=");
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const expired = attrs.some((a) => {
        const [k = "", v = ""] = a.trim().split("=");
        if (k.toLowerCase() === "max-age") return Number(v) <= 0;
        if (k.toLowerCase() === "expires") return Date.parse(v) <= Date.now();
        return false;
      });
      if (expired || value === "") this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }
}

function attr(tag: string, name: string): string | undefined {
  const m = new RegExp(`\\b${name}\\s*=\\s*"([^"]*)"`, "i").exec(tag);
  return m?.[1] === undefined ? undefined : decodeEntities(m[1]);
}

function decodeEntities(s: string): string {
  return s
    .replace(/&quot;/g, '"')
    .replace(/&#39;|&#x27;/g, "'")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&");
}
