/**
 * Compile policy globs into one anchored RegExp: `*` is any run of characters, `?` one character,
 * `\*` and `\?` are the literal characters (so `'/\*'` names the argument `/*` itself), and every
 * other character is literal. "Any character" includes a newline (dotAll): a file name or an
 * argument with a newline in it must not slip past `*`.
 */
export function globsToRegExp(globs: readonly string[], flags = ""): RegExp {
  return new RegExp(`^(?:${globs.map(globSource).join("|")})$`, flags.includes("s") ? flags : `${flags}s`);
}

function globSource(glob: string): string {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i]!;
    if (ch === "\\" && (glob[i + 1] === "*" || glob[i + 1] === "?")) out += `\\${glob[++i]}`;
    else if (ch === "*") out += ".*";
    else if (ch === "?") out += ".";
    else out += ch.replace(/[.+^${}()|[\]\\/]/g, "\\$&");
  }
  return out;
}
