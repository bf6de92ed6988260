// ref_greedy.mjs — llama.cpp's greedy continuations (node-llama-cpp@3.21.1,
// llama.cpp CPU build) for tests/unit/test_engine_greedy.c.
//
// Usage (from the repository root):
//   node tools/ref/ref_greedy.mjs <model.gguf> <n_gen> <out.txt> <label> <prompt>...
// Regenerate the committed fixture:
//   node tools/ref/ref_greedy.mjs ../shared/models/stories260K.gguf 64 tests/fixtures/engine/greedy_stories260K.txt stories260K.gguf "Once upon a time" "The little dog" "Lily wanted to" "One day, a big bear"
//
// Output (line oriented, read by the C test):
//   # comment lines (source, command)
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
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: path.resolve(modelPath)});
const lines = [
    `# llama.cpp greedy reference via node-llama-cpp@3.21.1 (CPU), model ${label}`,
    `# command: node tools/ref/ref_greedy.mjs <model> ${nGen} <out> ${label} ${prompts.map((p) => JSON.stringify(p)).join(" ")}`,
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
