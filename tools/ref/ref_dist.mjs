// ref_dist.mjs — llama.cpp's full next-token distributions, teacher-forced
// over a fixed token sequence (node-llama-cpp@3.21.1, llama.cpp CPU build),
// for tests/unit/test_engine_dist.c.
//
// Usage (from the repository root):
//   node tools/ref/ref_dist.mjs <out_dir> <n_pos> <name>=<model.gguf>...
// Regenerate the committed fixture (models made by our generator, exactly as the test makes them;
// --type/--pure per format as in tests/fixtures/engine/dist/README.md):
//   T="F16 Q8_0 Q4_0 Q4_K_M Q6_K MXFP4 BF16 Q4_1 Q5_0 Q5_1 Q2_K Q3_K Q5_K"
//   for a in llama qwen2 phi3; do for t in $T; do
//     p=; f=$t   # --pure: every weight in the format (MXFP4 would be llama.cpp's MXFP4_MOE mix, Q8_0 for dense)
//     case $t in MXFP4|Q2_K) p=--pure;; Q3_K) p=--pure f=Q3_K_M;; Q5_K) p=--pure f=Q5_K_M;; esac
//     build/llorch gguf make --preset tiny --arch $a --type $f $p --vocab-from ../shared/models/stories260K.gguf --seed 1 -o /tmp/dist/$a-$t.gguf; done; done
//   node tools/ref/ref_dist.mjs tests/fixtures/engine/dist 32 $(for a in llama qwen2 phi3; do for t in $T; do echo $a-$t=/tmp/dist/$a-$t.gguf; done; done)
//
// Output: <out_dir>/index.txt (line oriented, read by the C test):
//   # comments
//   tokens <n> <ids...>         BOS + llama_tokenize(TEXT) (the teacher-forced sequence)
//   model <name> <n_pos> <n_vocab> <file bytes> <fnv1a64 of the file, hex>
// and <out_dir>/<name>.f16: n_pos x n_vocab little-endian float16 log-probabilities;
// row k is log p(next | tokens[0..k]) at temperature 1 with no filtering
// (a token llama.cpp reports no probability for is stored as -30).
import fs from "node:fs";
import path from "node:path";
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

// REF_DIST_TEXT overrides the sentence (tools/ref/ref_gptoss.sh needs more positions)
const TEXT = process.env.REF_DIST_TEXT ||
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.";
const [outDir, nPosStr, ...specs] = process.argv.slice(2);
if (!outDir || !nPosStr || specs.length === 0) {
    console.error("usage: node ref_dist.mjs <out_dir> <n_pos> <name>=<model.gguf>...");
    process.exit(2);
}
const nPos = parseInt(nPosStr, 10);
fs.mkdirSync(outDir, {recursive: true});

function fnv1a64(buf) {
    let h = 0xcbf29ce484222325n;
    const p = 0x100000001b3n, m = (1n << 64n) - 1n;
    for (const b of buf) h = ((h ^ BigInt(b)) * p) & m;
    return h.toString(16).padStart(16, "0");
}
function f16(x) { // round to nearest even, finite inputs in range
    const f = new Float32Array([x]), u = new Uint32Array(f.buffer)[0];
    const sign = (u >>> 16) & 0x8000;
    let e = ((u >>> 23) & 0xff) - 127 + 15, m = u & 0x7fffff;
    if (e >= 31) return sign | 0x7c00;
    if (e <= 0) {
        if (e < -10) return sign;
        m |= 0x800000;
        const shift = 14 - e, half = 1 << (shift - 1), rest = m & ((1 << shift) - 1);
        let r = m >>> shift;
        if (rest > half || (rest === half && (r & 1))) r++;
        return sign | r;
    }
    let r = (e << 10) | (m >>> 13);
    const rest = m & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (r & 1))) r++;
    return sign | r;
}

const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const lines = ["# llama.cpp teacher-forced distributions via node-llama-cpp@3.21.1 (CPU)",
    `# text: ${TEXT}`, "# command: see tools/ref/ref_dist.mjs"];
let tokensLine = null;
for (const spec of specs) {
    const eq = spec.indexOf("=");
    const name = spec.slice(0, eq), file = spec.slice(eq + 1);
    const bytes = fs.readFileSync(file);
    const model = await llama.loadModel({modelPath: path.resolve(file)});
    const nVocab = model.fileInsights.ggufFileInfo.metadata.tokenizer.ggml.tokens.length;
    const ids = [model.tokens.bos, ...model.tokenize(TEXT)];
    if (ids.length < nPos) throw new Error(`sequence too short: ${ids.length}`);
    const line = `tokens ${nPos} ${ids.slice(0, nPos).join(" ")}`;
    if (tokensLine === null) { tokensLine = line; lines.push(line); }
    else if (tokensLine !== line) throw new Error(`tokenization differs for ${name}`);
    const ctx = await model.createContext({contextSize: 256, sequences: 1, threads: 1});
    const seq = ctx.getSequence();
    const out = new Uint16Array(nPos * nVocab);
    const g = seq.evaluateWithMetadata([ids[0]], {probabilities: true}, {temperature: 1, topK: 0, topP: 1, minP: 0, yieldEogToken: true});
    let r = await g.next();
    for (let k = 0; k < nPos; k++) {
        const probs = r.value.probabilities;
        for (let t = 0; t < nVocab; t++) {
            const p = probs.get(t);
            out[k * nVocab + t] = f16(p > 0 ? Math.max(Math.log(p), -30) : -30);
        }
        if (k + 1 < nPos) r = await g.next(ids[k + 1]);
    }
    await g.return();
    await ctx.dispose();
    await model.dispose();
    fs.writeFileSync(path.join(outDir, `${name}.f16`), Buffer.from(out.buffer));
    lines.push(`model ${name} ${nPos} ${nVocab} ${bytes.length} ${fnv1a64(bytes)}`);
    console.log(`${name}: done`);
}
fs.writeFileSync(path.join(outDir, "index.txt"), lines.join("\n") + "\n");
