// llamacpp_pretok.cpp — driver for tools/ref/llamacpp_check.sh: reads hex strings, one a line, and
// prints the byte lengths of llama.cpp's unicode_regex_split pieces for each pre, in the fixture format.
// Built against the llama.cpp source node-llama-cpp ships; not part of the project build.
#include "unicode.h"
#include <iostream>
#include <string>
#include <vector>
int main() {
    std::vector<std::pair<std::string, std::vector<std::string>>> pres = {
        {"gpt2", {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"}},
        {"llama3", {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
        {"qwen2", {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
        {"o200k_llamacpp", {"[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
        {"llama_default", {"[\\p{P}\\$\\+<=>\\^~\\|]+", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)", "\\p{N}+", "[0-9][0-9][0-9]"}},
    };
    std::string line;
    while (std::getline(std::cin, line)) {
        std::string t;
        for (size_t i = 0; i + 1 < line.size(); i += 2) t.push_back((char)std::stoi(line.substr(i, 2), nullptr, 16));
        std::cout << "S " << line << "\n";
        for (auto &p : pres) {
            auto words = unicode_regex_split(t, p.second, false);
            std::cout << p.first;
            for (auto &w : words) std::cout << " " << w.size();
            std::cout << "\n";
        }
    }
}
