// test-libs: llorch_net llorch_tok llorch_gguf llorch_core
/* UTF-8 streaming (SPEC §3.4): on the Llama-2 32k vocabulary with byte
 * fallback (llama-2-tiny-random.gguf: random weights, so sampling at
 * temperature 1 emits byte tokens that split multi-byte characters), every
 * token event's `t` is complete valid UTF-8, the concatenation equals the
 * decode of the generated ids (the worker's --debug-ids flag puts them in
 * the events), and U+FFFD appears only where the decode itself is invalid. */
#include "test_worker_util.h"

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

/* drops invalid bytes (and U+FFFD): the comparison key when the decode itself is invalid */
static void strip_invalid(const char *s, size_t n, struct util_sb *out) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int l = util_utf8_decode(s + i, n - i, &cp);
        if (l == 0) {
            i++;
            continue;
        }
        if (cp != 0xFFFD) util_sb_putn(out, s + i, (size_t)l);
        i += (size_t)l;
    }
}

static void test_utf8_stream(void **st) {
    (void)st;
    char m[512], err[256];
    TU_MODEL(m, "llama-2-tiny-random.gguf");
    if (access(m, R_OK) != 0) skip();
    gguf_ctx *g;
    assert_int_equal(gguf_open(m, &g, err, sizeof err), 0);
    tok_vocab *v;
    assert_int_equal(tok_load_gguf(g, &v, err, sizeof err), 0);

    tw_proc p;
    const char *extra[] = {"--debug-ids", "--ctx-size", "256", NULL};
    if (tw_spawn(&p, "llama-2-tiny-random.gguf", 0, extra, 1) != 0) {
        tw_dump_log(&p);
        fail_msg("worker did not start");
    }
    int byte_tokens = 0, invalid_runs = 0, multibyte_from_bytes = 0;
    for (int seed = 1; seed <= 8; seed++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"job_id\":\"u%d\",\"prompt\":\"Grüße aus 東京 🎉\",\"max_tokens\":128,\"temperature\":1,\"seed\":%d}",
                 seed, seed);
        tw_events e;
        assert_int_equal(tw_run(&p, body, &e), 200);
        assert_int_equal(e.bad_json, 0);
        assert_string_equal(tw_last(&e), "end");
        /* gather ids; each event's text must be valid UTF-8 on its own */
        int32_t ids[512];
        int nid = 0;
        for (int k = 0; k < e.n; k++) {
            if (strcmp(e.name[k], "token")) continue;
            json_t *t = json_object_get(e.data[k], "t");
            assert_true(util_utf8_valid(json_string_value(t), json_string_length(t)));
            json_t *a = json_object_get(e.data[k], "ids");
            assert_true(json_is_array(a));
            for (size_t q = 0; q < json_array_size(a) && nid < 512; q++)
                ids[nid++] = (int32_t)json_integer_value(json_array_get(a, q));
        }
        int tokens_out = (int)json_integer_value(json_object_get(tw_last_data(&e), "tokens_out"));
        /* every generated id is reported exactly once (the last ones may be
         * held only if the stream ended inside a sequence: then a final
         * flush event carries them) */
        assert_int_equal(nid, tokens_out);
        struct util_sb full;
        util_sb_init(&full);
        for (int q = 0; q < nid; q++) {
            char piece[256];
            int pn = tok_piece(v, ids[q], 0, piece, sizeof piece);
            assert_true(pn >= 0 && pn <= (int)sizeof piece);
            util_sb_putn(&full, piece, (size_t)pn);
            const char *tt = tok_text(v, ids[q]);
            if (tt && strncmp(tt, "<0x", 3) == 0) byte_tokens++;
        }
        const char *text = tw_text(&e);
        size_t tl = strlen(text);
        assert_true(util_utf8_valid(text, tl));
        const char *fb = full.buf ? full.buf : "";
        if (util_utf8_valid(fb, full.len)) {
            /* a valid decode comes out byte for byte, without any U+FFFD it lacks */
            if (tl != full.len || memcmp(text, fb, tl) != 0)
                fail_msg("seed %d: stream text differs from the decode\n  stream: %s\n  decode: %s", seed, text, fb);
            for (size_t q = 0; q + 1 < full.len; q++)
                if ((unsigned char)fb[q] >= 0xC0) {
                    multibyte_from_bytes++;
                    break;
                }
        } else {
            invalid_runs++;
            struct util_sb a, b;
            util_sb_init(&a);
            util_sb_init(&b);
            strip_invalid(text, tl, &a);
            strip_invalid(fb, full.len, &b);
            assert_int_equal(a.len, b.len);
            if (a.len) assert_memory_equal(a.buf, b.buf, a.len);
            util_sb_free(&a);
            util_sb_free(&b);
        }
        util_sb_free(&full);
        tw_events_free(&e);
    }
    print_message("byte tokens sampled: %d; runs with invalid decodes: %d; runs with multi-byte text: %d\n", byte_tokens,
                  invalid_runs, multibyte_from_bytes);
    assert_true(byte_tokens > 0); /* the test exercised byte fallback at all */
    tw_kill(&p);
    assert_true(WIFEXITED(p.status) && WEXITSTATUS(p.status) == 0);
    tok_free(v);
    gguf_close(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
