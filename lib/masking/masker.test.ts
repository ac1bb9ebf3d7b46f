import assert from "node:assert/strict";
import { isUtf8 } from "node:buffer";
import { DEFAULT_DETECTORS, DETECTOR_NAMES, type Detector } from "./detectors.js";
import { compileMasker, WHOLE_REDACTION, type MaskSpec } from "./masker.js";

const ALL = [...DETECTOR_NAMES];
const masker = (over: Partial<MaskSpec> = {}) => compileMasker({ detectors: ALL, columns: [], fields: [], ...over });

const CARD = "4111 1111 1111 1111";
const JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ";

describe("masker", () => {
  describe("maskText", () => {
    it("masks several kinds in one text and counts them", () => {
      const r = masker().maskText(
        `user alice@example.com paid with ${CARD}, ssn 123-45-6789, call +1 (555) 010-0000, ` +
          `token ${JWT} key AKIAIOSFODNN7EXAMPLE`,
      );
      assert.equal(
        r.text,
        "user [masked:email] paid with [masked:card], ssn [masked:national_id], call [masked:phone], " +
          "token [masked:jwt] key [masked:cloud_key]",
      );
      assert.equal(r.masked, 6);
    });

    it("returns the very same string when nothing matches (fast path and after a full look)", () => {
      const m = masker();
      for (const text of [
        "",
        "plain words only",
        "2024-01-15T12:34:56.789Z INFO GET /api/v1/orders/123456 200 12ms ip=10.0.3.17 v1.2.3",
        " 1700000000000 | 192.168.100.200 | order 2024011512345678 | +00:00",
      ]) {
        const r = m.maskText(text);
        assert.equal(r.masked, 0);
        assert.equal(r.text, text);
      }
      const big = "no secrets here, just 12 words and 2024-01-15 dates. ".repeat(20_000);
      assert.equal(m.maskText(big).text, big);
    });

    it("keeps characters around matches intact, surrogate pairs included", () => {
      const m = masker();
      assert.equal(m.maskText("😀 bob@example.com 😀").text, "😀 [masked:email] 😀");
      assert.equal(m.maskText(`中文 ${CARD} ✓`).text, "中文 [masked:card] ✓");
      assert.equal(m.maskText("\uD800 x@example.com \uDC00").text, "\uD800 [masked:email] \uDC00");
    });

    it("never throws on odd input", () => {
      const m = masker();
      const junk = [
        "\uD800".repeat(1000),
        String.fromCharCode(...Array.from({ length: 5000 }, (_, i) => (i * 7919) % 65536)),
        "@".repeat(100_000),
        "a".repeat(200_000) + "@",
        "a@" + "b.".repeat(100_000),
        "eyJ".repeat(50_000),
        "-----BEGIN PRIVATE KEY-----".repeat(10_000),
        "4".repeat(1_000_000),
        "(1".repeat(100_000),
        "+1 ".repeat(100_000),
      ];
      for (const text of junk) {
        const r = m.maskText(text);
        assert.equal(typeof r.text, "string");
      }
    });
  });

  describe("replacement", () => {
    it("redact names the detector", () => {
      assert.equal(masker().maskText("a@b.io").text, "[masked:email]");
    });

    it("partial keeps the last four digits, or the domain", () => {
      const m = masker({ replacement: "partial" });
      assert.equal(m.maskText("4111111111111111").text, "************1111");
      assert.equal(m.maskText(CARD).text, "**** **** **** 1111");
      assert.equal(m.maskText("alice@example.com").text, "***@example.com");
      assert.equal(m.maskText("+1 (555) 010-0000").text, "+* (***) ***-0000");
      assert.equal(m.maskText("ssn 123-45-6789").text, "ssn ***-**-6789");
      assert.equal(m.maskText(JWT).text, "[masked:jwt]"); // secrets have no safe part to show
    });

    it("hash is a keyed HMAC prefix: equal values join, keys differ, separators do not matter", () => {
      const a = masker({ replacement: "hash", hashKey: "k1" });
      const h = a.maskText("alice@example.com").text;
      assert.match(h, /^\[hash:[0-9a-f]{12}\]$/);
      assert.equal(a.maskText("Alice@Example.com").text, h);
      assert.equal(masker({ replacement: "hash", hashKey: "k1" }).maskText("alice@example.com").text, h);
      assert.notEqual(masker({ replacement: "hash", hashKey: "k2" }).maskText("alice@example.com").text, h);
      assert.equal(a.maskText("4111-1111-1111-1111").text, a.maskText("4111111111111111").text);
      // Without a key, hashes still join within the process.
      assert.equal(
        masker({ replacement: "hash" }).maskText("bob@example.com").text,
        masker({ replacement: "hash" }).maskText("bob@example.com").text,
      );
    });
  });

  describe("columns", () => {
    const m = masker({ columns: ["users.email", "*.password", "ssn", "public.cards.number", "*_token"] });

    it("matches table.column globs, bare names in any table, schema-qualified tables", () => {
      assert.ok(m.columnRule("users", "email"));
      assert.ok(m.columnRule("public.users", "email"));
      assert.ok(m.columnRule("USERS", "Email"));
      assert.ok(!m.columnRule("orders", "email"));
      assert.ok(!m.columnRule(undefined, "email"));
      assert.ok(m.columnRule("anything", "password"));
      assert.ok(m.columnRule(undefined, "password"));
      assert.ok(m.columnRule(undefined, "ssn"));
      assert.ok(m.columnRule("public.cards", "number"));
      assert.ok(!m.columnRule("cards", "number"));
      assert.ok(m.columnRule("sessions", "refresh_token"));
      assert.ok(!m.columnRule("users", "name"));
      assert.ok(!masker().columnRule("users", "email"));
    });

    it("maskValue: column rule replaces the whole value, else detectors, else undefined", () => {
      assert.equal(m.maskValue("users", "email", "anything at all"), WHOLE_REDACTION);
      assert.equal(m.maskValue("users", "note", "mail bob@example.com"), "mail [masked:email]");
      assert.equal(m.maskValue("users", "note", "nothing here"), undefined);
      assert.equal(m.maskWhole("x"), WHOLE_REDACTION);
      const p = masker({ columns: ["ssn", "email", "password"], replacement: "partial" });
      assert.equal(p.maskValue(undefined, "ssn", "123-45-6789"), "***-**-6789");
      assert.equal(p.maskValue(undefined, "email", "bob@example.com"), "***@example.com");
      assert.equal(p.maskValue(undefined, "password", "hunter2"), WHOLE_REDACTION);
      assert.equal(p.maskValue(undefined, "password", "12345678"), WHOLE_REDACTION, "a PIN is not a card");
    });

    it("hashes a whole value like the same value found in text, so they join", () => {
      const h = masker({ columns: ["card"], replacement: "hash", hashKey: "k" });
      assert.equal(h.maskValue(undefined, "card", "4111-1111-1111-1111"), h.maskText("4111111111111111").text);
      assert.match(h.maskValue(undefined, "card", "not a card")!, /^\[hash:[0-9a-f]{12}\]$/);
    });
  });

  describe("maskJson", () => {
    const m = masker({ fields: ["password", "*.token", "user.ssn", "*_key"] });

    it("masks fields by name at any depth, by path suffix, through arrays", () => {
      const input = {
        password: "p1",
        nested: { deep: { password: "p2" }, token: "t1" },
        token: "top-level token is not *.token",
        user: { ssn: 123456789, name: "Ann" },
        users: [{ user: { ssn: "x" } }, { other: 1 }],
        api_key: { id: 1 },
        maybe: null,
        list: ["bob@example.com", 4111111111111111, 42],
      };
      assert.deepEqual(m.maskJson(input), {
        password: WHOLE_REDACTION,
        nested: { deep: { password: WHOLE_REDACTION }, token: WHOLE_REDACTION },
        token: "top-level token is not *.token",
        user: { ssn: WHOLE_REDACTION, name: "Ann" },
        users: [{ user: { ssn: WHOLE_REDACTION } }, { other: 1 }],
        api_key: WHOLE_REDACTION,
        maybe: null,
        list: ["[masked:email]", "[masked:card]", 42],
      });
      assert.equal(input.password, "p1", "the input is not modified");
    });

    it("keeps a null under a masked field, masks keys that are addresses, keeps __proto__ an own key", () => {
      assert.deepEqual(m.maskJson({ password: null }), { password: null });
      assert.deepEqual(m.maskJson({ "bob@example.com": "admin" }), { "[masked:email]": "admin" });
      const parsed = JSON.parse('{"__proto__": {"x": 1}, "password": "p"}') as Record<string, unknown>;
      const out = m.maskJson(parsed) as Record<string, unknown>;
      assert.equal(Object.getPrototypeOf(out), Object.prototype);
      assert.deepEqual(Object.keys(out), ["__proto__", "password"]);
    });

    it("returns the same objects when nothing changes", () => {
      const untouched = { a: [1, "two", { three: 3 }], b: { c: "d" } };
      assert.equal(m.maskJson(untouched), untouched);
      const partly = { keep: { k: 1 }, change: { password: "x" } };
      const out = m.maskJson(partly) as typeof partly;
      assert.equal(out.keep, partly.keep, "unchanged subtrees are shared, not copied");
      assert.equal(m.maskJson("plain"), "plain");
      assert.equal(m.maskJson(7), 7);
    });
  });

  describe("maskBuffer", () => {
    it("returns undefined, not a copy, when nothing matches", () => {
      const m = masker();
      assert.equal(m.maskBuffer(Buffer.alloc(0)), undefined);
      assert.equal(m.maskBuffer(Buffer.from("total 0\ndrwxr-xr-x 2 root root 4096 Jan 15 12:34 .\n")), undefined);
      assert.equal(m.maskBuffer(Buffer.from("ünïcödé ✓ 日本語 2024-01-15")), undefined);
    });

    it("masks like maskText and keeps UTF-8 around matches valid", () => {
      const m = masker();
      const text = `ü ${CARD} ✓ jörg@müller.de 日本 +44 20 7946 0958 😀`;
      const out = m.maskBuffer(Buffer.from(text));
      assert.ok(out && isUtf8(out));
      assert.equal(out.toString(), m.maskText(text).text);
      assert.equal(out.toString(), "ü [masked:card] ✓ [masked:email] 日本 [masked:phone] 😀");
    });

    it("leaves a character split across chunks for the next chunk to finish", () => {
      const m = masker();
      const whole = Buffer.from("name jörg@example.com done é");
      const cut1 = whole.indexOf(0xc3); // between the two bytes of 'ö'
      const chunks = [
        whole.subarray(0, cut1 + 1),
        whole.subarray(cut1 + 1, whole.length - 1),
        whole.subarray(whole.length - 1),
      ];
      const out = Buffer.concat(chunks.map((c) => m.maskBuffer(c) ?? c));
      assert.ok(isUtf8(out), out.toString("latin1"));
      assert.equal(out.toString(), "name jö[masked:email] done é");

      const pem = Buffer.from("-----BEGIN PRIVATE KEY-----\nMIIB\u00e9");
      const head = pem.subarray(0, pem.length - 1); // ends with the first byte of 'é'
      const masked = m.maskBuffer(head)!;
      assert.equal(masked.toString("latin1"), "[masked:private_key]\u00c3");
      assert.ok(isUtf8(Buffer.concat([masked, pem.subarray(pem.length - 1)])));
    });

    it("passes binary junk through byte for byte outside the matches", () => {
      const m = masker();
      const junk = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7919 + (i >> 3)) & 0xff));
      assert.equal(m.maskBuffer(junk), undefined);
      const out = m.maskBuffer(Buffer.concat([junk, Buffer.from(" x@example.com "), junk]));
      assert.ok(out?.equals(Buffer.concat([junk, Buffer.from(" [masked:email] "), junk])));
    });
  });

  describe("fails closed", () => {
    const broken: Detector[] = DEFAULT_DETECTORS.map((d) =>
      d.name === "email"
        ? {
            ...d,
            validate: () => {
              throw new Error("boom");
            },
          }
        : d,
    );
    const m = compileMasker({ detectors: ALL, columns: [], fields: [] }, broken);

    it("returns a full redaction, never the input, when masking throws", () => {
      assert.deepEqual(m.maskText("secret a@example.com"), { text: WHOLE_REDACTION, masked: 1 });
      assert.equal(m.maskBuffer(Buffer.from("secret a@example.com"))?.toString(), WHOLE_REDACTION);
      assert.equal(m.maskValue("t", "c", "a@example.com"), WHOLE_REDACTION);
      assert.deepEqual(m.maskJson({ ok: "fine", bad: "a@example.com" }), { ok: "fine", bad: WHOLE_REDACTION });
      assert.equal(m.maskText("no address here").text, "no address here"); // the fast path never reached it
    });

    it("also when a replacement cannot be computed", () => {
      const badKey = masker({ replacement: "hash", hashKey: 42 as unknown as string });
      assert.equal(badKey.maskText("a@example.com").text, WHOLE_REDACTION);
      assert.equal(badKey.maskValue(undefined, "c", "a@example.com"), WHOLE_REDACTION);
    });

    it("and when a JSON value cannot be walked", () => {
      const cyclic: Record<string, unknown> = { a: "x@example.com" };
      cyclic.self = cyclic;
      assert.equal(masker().maskJson(cyclic), WHOLE_REDACTION);
    });

    it("rejects unknown detector names at compile time", () => {
      assert.throws(
        () => compileMasker({ detectors: ["nope" as "email"], columns: [], fields: [] }),
        /unknown mask detector/,
      );
    });
  });
});
