// ref_gguf_load.mjs — does llama.cpp (node-llama-cpp 3.21.1, CPU build) load a
// GGUF file, and what does it do with it? Prints one JSON line:
//   {"ok":true,"file":..,"n_vocab":..,"tokens":[ids of PROMPT],"greedy":[N next ids],"text":"..."}
// or {"ok":false,"error":"..."} with exit code 1.
// usage: node tools/ref/ref_gguf_load.mjs FILE.gguf [PROMPT] [N]
import {getLlama, LlamaLogLevel} from "node-llama-cpp";

const [file, prompt = "Once upon a time", nArg = "8"] = process.argv.slice(2);
if (!file) {
    console.error("usage: node ref_gguf_load.mjs FILE.gguf [PROMPT] [N]");
    process.exit(2);
}
const n = parseInt(nArg, 10);
try {
    const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
    const model = await llama.loadModel({modelPath: file});
    const tokens = model.tokenize(prompt, true);
    const ctx = await model.createContext({contextSize: 256});
    const seq = ctx.getSequence();
    const greedy = [];
    if (n > 0) {
        for await (const t of seq.evaluate(tokens, {temperature: 0})) {
            greedy.push(t);
            if (greedy.length >= n) break;
        }
    }
    console.log(JSON.stringify({ok: true, file, n_vocab: model.tokens.length ?? null, tokens,
                                greedy, text: model.detokenize(greedy)}));
    await ctx.dispose();
    await model.dispose();
    process.exit(0);
} catch (e) {
    console.log(JSON.stringify({ok: false, file, error: String(e && e.message || e)}));
    process.exit(1);
}
