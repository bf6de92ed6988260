// ref_bench.mjs — llama.cpp's CPU throughput (node-llama-cpp@3.21.1) measured
// the way `llorch bench` measures ours, for docs/PERF.md.
//
// Usage (from the repository root):
//   node tools/ref/ref_bench.mjs <model.gguf> <p> <n> <reps> <threads>
// pp<p>: p random token ids (fixed LCG seed, as llorch bench) evaluated in one
//        batch (batchSize = p) into an empty sequence, no generation; t/s = p / time.
// tg<n>: one token then n greedy tokens (temperature 0, so sampling is included,
//        as in llorch bench); t/s = n / time.
// One untimed warm-up, then <reps> timed runs; prints median, min, max.
import path from "node:path";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const [modelPath, pStr, nStr, rStr, tStr] = process.argv.slice(2);
if (!modelPath || !pStr || !nStr || !rStr || !tStr) {
    console.error("usage: node ref_bench.mjs <model.gguf> <p> <n> <reps> <threads>");
    process.exit(2);
}
const P = parseInt(pStr, 10), N = parseInt(nStr, 10), R = parseInt(rStr, 10), T = parseInt(tStr, 10);
const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: path.resolve(modelPath)});
const nVocab = model.fileInsights.ggufFileInfo.metadata.tokenizer.ggml.tokens.length;
const ctx = await model.createContext({contextSize: Math.max(P, N + 1) + 8, batchSize: Math.max(P, 1), sequences: 1, threads: {ideal: T, min: T}});
const seq = ctx.getSequence();
// the same token ids as llorch bench (64-bit LCG, ids = (state >> 33) % n_vocab)
const toks = [];
let s = 1234n;
for (let i = 0; i < P; i++) {
    s = (s * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n);
    toks.push(Number((s >> 33n) % BigInt(nVocab)));
}
const now = () => Number(process.hrtime.bigint()) / 1e9;
function stats(name, v) {
    v.sort((a, b) => a - b);
    const med = v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
    console.log(`| ${name.padEnd(8)} | ${med.toFixed(2).padStart(12)} | ${v[0].toFixed(2).padStart(12)} | ${v[v.length - 1].toFixed(2).padStart(12)} |`);
}
console.log(`llama.cpp (node-llama-cpp 3.21.1, CPU) model ${modelPath}, threads ${T}, repetitions ${R}`);
console.log(`| test     |   t/s median |      t/s min |      t/s max |`);
if (P > 0) {
    const v = [];
    for (let k = -1; k < R; k++) {
        await seq.clearHistory();
        const t0 = now();
        await seq.evaluateWithoutGeneratingNewTokens(toks);
        const dt = now() - t0;
        if (k >= 0) v.push(P / dt);
    }
    stats(`pp${P}`, v);
}
if (N > 0) {
    const v = [];
    for (let k = -1; k < R; k++) {
        await seq.clearHistory();
        const t0 = now();
        let n = 0;
        for await (const t of seq.evaluate([toks.length ? toks[0] : 1], {temperature: 0, yieldEogToken: true})) {
            if (++n >= N) break;
        }
        const dt = now() - t0;
        if (k >= 0) v.push(N / dt);
    }
    stats(`tg${N}`, v);
}
await ctx.dispose();
