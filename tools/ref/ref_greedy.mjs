// ref_greedy.mjs — llama.cpp's greedy continuations (node-llama-cpp@3.21.1,
// llama.cpp CPU build) for tests/unit/test_engine_greedy.c.
//
// Usage (from the repository root):
//   node tools/ref/ref_greedy.mjs <model.gguf> <n_gen> <out.txt> <label> <prompt>...
// Regenerate the committed fixtures:
//   node tools/ref/ref_greedy.mjs ../shared/models/stories260K.gguf 64 tests/fixtures/engine/greedy_stories260K.txt stories260K.gguf "Once upon a time" "The little dog" "Lily wanted to" "One day, a big bear"
//   for t in Q8_0 Q5_0 Q5_1 Q4_0 Q4_1; do
//     build/llorch gguf quantize ../shared/models/stories260K.gguf /tmp/st-$t.gguf $t
//     node tools/ref/ref_greedy.mjs /tmp/st-$t.gguf 48 tests/fixtures/engine/greedy_stories260K-$t.txt "stories260K.gguf requantized by llorch gguf quantize to $t" "Once upon a time" "The little dog" "Lily wanted to"; done
//
// Output (line oriented, read by the C test):
//   # comment lines (source, command)
//   file <bytes> <fnv1a64 hex>  the model file, so a test can tell it has the same file
//   case <prompt text>
//   prompt <n> <ids...>     BOS + llama_tokenize(text, add_special=false, parse_special=false)
//   gen <n> <ids...>        the n greedy tokens (temperature 0, no penalties), EOS included if produced
import fs from "node:fs";
import path from "node:path";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const [modelPath, nGenStr, outPath, label, ...prompts] = process.argv.slice(2);
if (!modelPath || !nGenStr || !outPath || !label || prompts.length === 0) {
    console.error("usage: node ref_greedy.mjs <model.gguf> <n_gen> <out.txt> <label> <prompt>...");
    process.exit(2);
}
const nGen = parseInt(nGenStr, 10);
function fnv1a64(buf) {
    let h = 0xcbf29ce484222325n;
    const p = 0x100000001b3n, m = (1n << 64n) - 1n;
    for (const b of buf) h = ((h ^ BigInt(b)) * p) & m;
    return h.toString(16).padStart(16, "0");
}
const fileBytes = fs.readFileSync(modelPath);
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: path.resolve(modelPath)});
const lines = [
    `# llama.cpp greedy reference via node-llama-cpp@3.21.1 (CPU), model ${label}`,
    `# command: node tools/ref/ref_greedy.mjs <model> ${nGen} <out> ${JSON.stringify(label)} ${prompts.map((p) => JSON.stringify(p)).join(" ")}`,
    `file ${fileBytes.length} ${fnv1a64(fileBytes)}`,
];
for (const text of prompts) {
    const ctx = await model.createContext({contextSize: 512, sequences: 1, threads: 1});
    const seq = ctx.getSequence();
    const ids = [model.tokens.bos, ...model.tokenize(text)];
    const gen = [];
    for await (const t of seq.evaluate(ids, {temperature: 0})) {
        gen.push(t);
        if (gen.length >= nGen) break;
    }
    lines.push(`case ${text}`);
    lines.push(`prompt ${ids.length} ${ids.join(" ")}`);
    lines.push(`gen ${gen.length} ${gen.join(" ")}`);
    await ctx.dispose();
}
fs.writeFileSync(outPath, lines.join("\n") + "\n");
console.log(`wrote ${outPath}`);
