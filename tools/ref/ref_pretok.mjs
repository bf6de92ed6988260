// ref_pretok.mjs — reference splits for src/tokenizer/pretok.c.
// Runs the pre-tokenizer regexes with JavaScript RegExp (`u` flag: \p{..},
// lookahead, backtracking) over tests/fixtures/pretok/strings.json and writes
// tests/fixtures/pretok/expected.txt, a line format the C test reads:
//   S <utf-8 bytes as hex>          one string
//   <pre> <len> <len> ...           byte lengths of its spans, in order
// Run from the repository root:
//   node tools/ref/ref_pretok.mjs tests/fixtures/pretok/strings.json > tests/fixtures/pretok/expected.txt
//   node tools/ref/ref_pretok.mjs --random 400 1 > tests/fixtures/pretok/random.txt
// (--random N SEED: N strings of 1..24 characters drawn, with a seeded PRNG,
// from a pool of the characters these regexes treat differently.)
//
// The regexes are written as llama.cpp runs them (src/llama-vocab.cpp of the
// llama.cpp inside node-llama-cpp 3.21.1), with two rewrites JS needs:
//  - \s / \S become the White_Space property class (llama.cpp's whitespace
//    table: U+0085 is space, U+FEFF is not; JS's own \s differs on both);
//  - (?i:'s|...) becomes '[sS]|... (llama.cpp's own rewrite), for the exact
//    o200k pattern '[sS\u017F]|... (Unicode simple case folding).
// Unmatched stretches (none occur with these patterns) would become their own
// spans, as in llama.cpp's unicode_regex_split_stl.
import { readFileSync } from "node:fs";

const W = "\\t\\n\\v\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000";
const C = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
// (?i:...) with Unicode simple case folding, for the o200k pattern as
// tokenizer.json has it: U+017F (long s) folds to s (CaseFolding.txt)
const CU = "(?:'[sS\\u017F]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
const TAIL_WS = `[${W}]*[\\r\\n]+|[${W}]+(?![^${W}])|[${W}]+`;

const PRES = {
  gpt2: `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${W}\\p{L}\\p{N}]+|[${W}]+(?![^${W}])|[${W}]+`,
  llama3: `${C}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^${W}\\p{L}\\p{N}]+[\\r\\n]*|${TAIL_WS}`,
  qwen2: `${C}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^${W}\\p{L}\\p{N}]+[\\r\\n]*|${TAIL_WS}`,
  // o200k as in tokenizer.json (tiktoken / HF tokenizers)
  o200k:
    `[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+${CU}?` +
    `|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*${CU}?` +
    `|\\p{N}{1,3}| ?[^${W}\\p{L}\\p{N}]+[\\r\\n/]*|${TAIL_WS}`,
  // llama.cpp's rewrite of o200k for std::regex (LLAMA_VOCAB_PRE_TYPE_GPT4O)
  o200k_llamacpp:
    `[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+${C}?` +
    `|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*${C}?` +
    `|\\p{N}{1,3}| ?[^${W}\\p{L}\\p{N}]+[\\r\\n/]*|${TAIL_WS}`,
};

// llama.cpp's "default" pre: a chain of regexes, each splitting every piece
// (matches and the stretches between them) the previous one left
const DEFAULT_CHAIN = [
  "[\\p{P}\\$\\+<=>\\^~\\|]+",
  PRES.gpt2,
  "\\p{N}+",
  "[0-9][0-9][0-9]",
];

function split(re, s) {
  const lens = [];
  const bytes = (a, b) => Buffer.byteLength(s.slice(a, b), "utf8");
  let at = 0;
  for (const m of s.matchAll(re)) {
    if (m[0].length === 0) throw new Error("empty match");
    if (m.index > at) lens.push(bytes(at, m.index));
    lens.push(bytes(m.index, m.index + m[0].length));
    at = m.index + m[0].length;
  }
  if (at < s.length) lens.push(bytes(at, s.length));
  return lens;
}

const POOL = [
  ..."aAzZsStTlLeErRvVmMdD", ..."0179", " ", " ", " ", "\t", "\n", "\r", "\v", "\f", "'", "'", "/", "!", ".", "-", "_", "$",
  ..."`~^|+<=>@#%()[]{}\\\"", "，", "。", "«", "—", "•", "ſ", "ſ",
  "\x85", "\xA0", "\u3000", "\u2003", "\uFEFF", "\u200D", "\x1C", "\0",
  "é", "É", "\u0301", "ǅ", "ʰ", "σ", "Σ", "ж", "Ж", "न", "म", "\u094D", "\u0947", "\u093F", "中", "文", "ア", "한",
  "٣", "½", "Ⅻ", "😀", "👍", "\u{1F3FD}", "€", "°", "²",
];
function* lcg(seed) {
  let x = BigInt(seed) || 1n;
  for (;;) {
    x = (x * 6364136223846793005n + 1442695040888963407n) & 0xffffffffffffffffn;
    yield Number(x >> 33n);
  }
}
function randomStrings(n, seed) {
  const r = lcg(seed);
  const out = [];
  for (let i = 0; i < n; i++) {
    const len = 1 + (r.next().value % 24);
    let s = "";
    for (let j = 0; j < len; j++) s += POOL[r.next().value % POOL.length];
    out.push(s);
  }
  return out;
}

const random = process.argv[2] === "--random";
// the chain, in characters: pieces as strings
function splitChain(chain, s) {
  let pieces = [s];
  for (const src of chain) {
    const re = new RegExp(src, "gu");
    const next = [];
    for (const p of pieces) {
      let at = 0;
      for (const m of p.matchAll(re)) {
        if (m.index > at) next.push(p.slice(at, m.index));
        next.push(m[0]);
        at = m.index + m[0].length;
      }
      if (at < p.length) next.push(p.slice(at));
    }
    pieces = next;
  }
  return pieces.map((p) => Buffer.byteLength(p, "utf8"));
}

const strings = random
  ? randomStrings(Number(process.argv[3]), Number(process.argv[4]))
  : JSON.parse(readFileSync(process.argv[2], "utf8"));
const out = [];
out.push(`# generated by: node tools/ref/ref_pretok.mjs ${process.argv.slice(2).join(" ")}`);
out.push(`# node ${process.versions.node}, Unicode ${process.versions.unicode} (ICU ${process.versions.icu}); C tables: see src/tokenizer/unicode_tables.c`);
for (const s of strings) {
  out.push(`S ${Buffer.from(s, "utf8").toString("hex")}`);
  for (const [name, src] of Object.entries(PRES)) {
    out.push(`${name}${split(new RegExp(src, "gu"), s).map((n) => " " + n).join("")}`);
  }
  out.push(`llama_default${splitChain(DEFAULT_CHAIN, s).map((n) => " " + n).join("")}`);
}
process.stdout.write(out.join("\n") + "\n");
