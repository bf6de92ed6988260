// tok_random_strings.mjs — writes tests/fixtures/tokenizer/strings_random.json:
// 150 deterministic pseudo-random strings mixing words of many scripts,
// contractions, numbers, punctuation, emoji (ZWJ, skin tones, flags),
// combining marks, odd spaces (U+2581, NBSP, ZWSP, BOM), and special-token
// texts of several vocabularies, joined by assorted whitespace. Fed to
// ref_tokenize.mjs for each vocabulary (see that file for the commands).
//   node tools/ref/tok_random_strings.mjs > tests/fixtures/tokenizer/strings_random.json
const atoms = [
    "the", "The", "THE", "hello", "world", "I'm", "don't", "it's", "we'll", "they've", "you'd", "HE'S", "'s", "'",
    "Mr.", "e.g.", "naïve", "café", "straße", "Ωμέγα", "привет", "東京", "你好", "こんにちは", "안녕", "مرحبا", "שלום",
    "नमस्ते", "ไทย", "🤖", "👍🏽", "👨‍👩‍👧", "🇺🇸", "e\u0301", "\u0301", "Z\u0351\u036b", "x²", "½", "Ⅻ", "١٢٣",
    "1234567", "3.14", "0x1F", "1,000", "42", "7", "#", "$", "%", "&&", "||", "->", "=>", "...", "—", "–", "«»",
    "“quoted”", "\"double\"", "(", ")", "[", "]", "{", "}", "<", ">", "/", "\\", "_", "__init__", "snake_case",
    "camelCase", "http://x.y/z?a=b", "\u2581", "\u2581\u2581x", "\u00a0", "\u3000", "\u200b", "\ufeff", "\ufffd",
    "<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<|channel|>",
    "<|return|>", "<|start|>", "<tool_call>", "<0x41>", "Ġ", "ĠĠ", "\u0000",
];
const seps = [" ", " ", " ", "", "  ", "   ", "    ", "\n", "\n\n", "\t", "\r\n", " \n", "\n ", "\t\t", " \t "];
let s = 0x2545F491;
const rnd = () => { // mulberry32
    s |= 0; s = (s + 0x6D2B79F5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (a) => a[Math.floor(rnd() * a.length)];
const out = [];
for (let i = 0; i < 150; i++) {
    const n = 1 + Math.floor(rnd() * 16);
    let str = rnd() < 0.2 ? pick(seps) : "";
    for (let k = 0; k < n; k++) str += (k ? pick(seps) : "") + pick(atoms);
    if (rnd() < 0.2) str += pick(seps);
    out.push(str);
}
console.log(JSON.stringify(out, null, 0));
