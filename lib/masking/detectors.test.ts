import assert from "node:assert/strict";
import { DEFAULT_DETECTORS, DETECTOR_NAMES, type DetectorName } from "./detectors.js";
import { compileFinder } from "./find.js";
import { compileMasker } from "./masker.js";
import { cardPrefixOk, digitCandidates, luhn } from "./scan.js";

/** What each detector alone leaves of `text` (redact mode). */
function only(name: DetectorName, text: string): string {
  return compileMasker({ detectors: [name], columns: [], fields: [] }).maskText(text).text;
}

// Strings up to 256 chars take a different precheck (one pass over the chars) from longer ones
// (indexOf per anchor): every case runs both ways.
const FILLER = "lorem ipsum dolor sit amet, ".repeat(12);

function flags(name: DetectorName, value: string, context = (v: string) => `see ${v} here`): void {
  for (const pad of ["", FILLER]) {
    const text = pad + context(value) + pad;
    assert.equal(
      only(name, text),
      pad + context(`[masked:${name}]`) + pad,
      `${name} should flag ${JSON.stringify(value)}`,
    );
    // The byte precheck (DataRow cells) must never rule out what the detector flags, wherever the
    // value sits in a larger buffer.
    const bytes = Buffer.from(`x9${text}9x`);
    const masker = compileMasker({ detectors: [name], columns: [], fields: [] });
    assert.ok(masker.mayMatch(bytes, 2, bytes.length - 2), `${name} precheck should pass ${JSON.stringify(value)}`);
    assert.ok(masker.maskBuffer(bytes.subarray(2, bytes.length - 2)), `${name} maskBuffer ${JSON.stringify(value)}`);
  }
}

function ignores(name: DetectorName, text: string): void {
  for (const pad of ["", FILLER])
    assert.equal(only(name, pad + text + pad), pad + text + pad, `${name} should not flag ${JSON.stringify(text)}`);
}

/** Appends the Luhn check digit. */
function withCheckDigit(body: string): string {
  for (let d = 0; d < 10; d++) if (luhn(body + d)) return body + d;
  throw new Error("unreachable");
}

describe("masking detectors", () => {
  it("exports every detector once, under the DetectorName union", () => {
    assert.deepEqual([...DETECTOR_NAMES].sort(), [
      "card",
      "cloud_key",
      "email",
      "jwt",
      "national_id",
      "phone",
      "private_key",
    ]);
  });

  describe("email", () => {
    it("flags practical addresses", () => {
      for (const v of [
        "alice@example.com",
        "first.last+tag@sub.example.co.uk",
        "o'brien@example.ie".slice(2), // "brien@…": the apostrophe is outside the mailbox class
        "jörg@müller.de",
        "user_1%x@xn--mller-kva.de",
      ])
        flags("email", v);
    });
    it("ignores lookalikes", () => {
      for (const t of ["user@localhost", "@example.com", "a@b", "version@1.2.3", "ssh git@host", "x @ y.com"])
        ignores("email", t);
    });
    it("masks the whole mailbox and stops the domain at its TLD", () => {
      assert.equal(only("email", "<alice@example.com>."), "<[masked:email]>.");
      assert.equal(only("email", "«bob@example.org»"), "[masked:email]»"); // non-ASCII next to the mailbox goes with it
    });
  });

  describe("card", () => {
    it("flags Luhn-valid numbers of real networks, grouped or not", () => {
      for (const v of [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5500 0000 0000 0004",
        "3782 822463 10005", // Amex 4-6-5
        "6011111111111117",
        "2221000000000009",
      ])
        flags("card", v);
    });
    it("ignores Luhn failures, unknown prefixes, ids and timestamps", () => {
      ignores("card", "card 4111 1111 1111 1112");
      ignores("card", "at 1700000000000 ms"); // epoch millis: prefix 1
      ignores("card", "order 2024011512345678"); // prefix 2024 is no network
      ignores("card", `id ${withCheckDigit("900000000000000")}`); // Luhn-valid, prefix 9
      ignores("card", "hex a4111111111111111b"); // inside a token
      ignores("card", "pi 3.4111111111111111"); // inside a decimal
      ignores("card", "4111 1111 1111 11111 1"); // odd grouping
    });
    it("drops a trailing number that is not part of the card", () => {
      assert.equal(only("card", "4111 1111 1111 1111 12 units"), "[masked:card] 12 units");
    });
    it("knows network prefixes and lengths", () => {
      assert.ok(cardPrefixOk("4111111111111"));
      assert.ok(!cardPrefixOk("41111111111111")); // Visa is 13, 16 or 19
      assert.ok(cardPrefixOk("378282246310005"));
      assert.ok(!cardPrefixOk("3782822463100050"));
      assert.ok(!cardPrefixOk("1111111111111111"));
    });
  });

  describe("national_id", () => {
    it("flags US SSNs that the SSA could issue", () => {
      for (const v of ["123-45-6789", "078-05-1121", "899-99-9999"]) flags("national_id", v);
    });
    it("ignores SSNs the SSA never issues", () => {
      for (const v of ["000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000"])
        ignores("national_id", `ssn ${v}`);
    });
    it("flags each of a space-separated list", () => {
      assert.equal(only("national_id", "123-45-6789 234-56-7890"), "[masked:national_id] [masked:national_id]");
      assert.equal(only("phone", "555-123-4567 555.987.6543"), "[masked:phone] [masked:phone]");
    });
    it("ignores dates, phone-like and longer numbers", () => {
      for (const t of ["2024-01-15", "123-45-67890", "1-123-45-6789", "123-45-6789-1"]) ignores("national_id", t);
    });
    it("flags UK NINOs and Luhn-valid Canadian SINs", () => {
      flags("national_id", "AB 12 34 56 C");
      flags("national_id", "AB123456C");
      const sin = withCheckDigit("13069254");
      flags("national_id", `${sin.slice(0, 3)} ${sin.slice(3, 6)} ${sin.slice(6)}`);
      flags("national_id", `${sin.slice(0, 3)}-${sin.slice(3, 6)}-${sin.slice(6)}`);
    });
    it("ignores impossible NINO prefixes and Luhn-invalid SINs", () => {
      for (const t of ["BG123456A", "QQ123456C", "DA123456A", "AB123456E", "XAB123456C"]) ignores("national_id", t);
      const sin = withCheckDigit("13069254");
      ignores("national_id", `${sin.slice(0, 3)} ${sin.slice(3, 6)} ${sin.slice(6, 8)}${(Number(sin[8]) + 1) % 10}`);
    });
  });

  describe("phone", () => {
    it("flags international and separated national numbers", () => {
      for (const v of [
        "+1 (555) 010-0000",
        "+44 20 7946 0958",
        "+14155550100",
        "+33 1 23 45 67 89",
        "(555) 123-4567",
        "555-123-4567",
        "555.123.4567",
        "1-800-555-0199",
        "020 7946 0958",
        "03-1234-5678",
      ])
        flags("phone", v);
    });
    it("ignores ids, timestamps, versions, IP addresses and offsets", () => {
      for (const t of [
        "id 4155550100",
        "order 12345678901",
        "2024-01-15 12:34:56",
        "2024-01-15T12:34:56.789+00:00",
        "Mon, 15 Jan 2024 12:34:56 +0000",
        "v1.2.3",
        "192.168.100.200",
        "10.0.0.1:5432",
        "1e+10",
        "(12 rows)",
        "01-02-2024",
        "+1234567", // 7 digits: too short for E.164
        "555-123-45678",
      ])
        ignores("phone", t);
    });
  });

  describe("jwt", () => {
    const token =
      "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0." +
      "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    it("flags a signed token, alone or in a header", () => {
      flags("jwt", token);
      flags("jwt", token, (v) => `Authorization: Bearer ${v}\r\n`);
      flags("jwt", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."); // alg none: empty signature
    });
    it("ignores base64 that is not a JOSE header", () => {
      ignores("jwt", "eyJub3QiOiJqd3QifQ.eyJ4IjoxfQ.c2ln"); // {"not":"jwt"}
      ignores("jwt", "eyJhbGciOiJIUzI1NiJ9"); // one part
      ignores("jwt", "eyJhbGciOiJIU.zI1NiJ9.x"); // header not valid base64 JSON
    });
  });

  describe("cloud_key", () => {
    const b62 = "Ab3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6kM9nP2rS5uV8xY1";
    it("flags vendor-prefixed credentials", () => {
      for (const v of [
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAY34FZKBOKMUTVV7A",
        `AIza${b62.slice(0, 33)}_-`,
        `ghp_${b62.slice(0, 36)}`,
        `github_pat_${b62.slice(0, 22)}_${b62.slice(0, 30)}`,
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        `sk_live_${b62.slice(0, 24)}`,
        `rk_live_${b62.slice(0, 24)}`,
      ])
        flags("cloud_key", v);
    });
    it("masks an AWS secret access key only next to its name, and only the value", () => {
      const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
      assert.equal(
        only("cloud_key", `aws_secret_access_key = ${secret}`),
        "aws_secret_access_key = [masked:cloud_key]",
      );
      assert.equal(only("cloud_key", `AWS_SECRET_ACCESS_KEY=${secret}`), "AWS_SECRET_ACCESS_KEY=[masked:cloud_key]");
      assert.equal(only("cloud_key", `{"SecretAccessKey": "${secret}"}`), '{"SecretAccessKey": "[masked:cloud_key]"}');
      ignores("cloud_key", `checksum ${secret}`);
    });
    it("ignores prefixes inside longer tokens and short lookalikes", () => {
      for (const t of ["MYAKIAIOSFODNN7EXAMPLE", "AKIA1234", "ghp_short", "ASIAN food", "sk_test_abcdefghijklmnop1234"])
        ignores("cloud_key", t);
    });
  });

  describe("private_key", () => {
    const body =
      "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nVJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvuNMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ\n";
    it("masks whole PEM blocks of every private key kind", () => {
      for (const label of ["", "RSA ", "EC ", "DSA ", "OPENSSH ", "ENCRYPTED "]) {
        const pem = `-----BEGIN ${label}PRIVATE KEY-----\n${body}-----END ${label}PRIVATE KEY-----`;
        assert.equal(only("private_key", `key:\n${pem}\nnext`), "key:\n[masked:private_key]\nnext", label);
      }
    });
    it("masks to the end when the END line is missing", () => {
      assert.equal(only("private_key", `x -----BEGIN RSA PRIVATE KEY-----\n${body}`), "x [masked:private_key]");
    });
    it("leaves public material alone", () => {
      ignores("private_key", "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqh\n-----END PUBLIC KEY-----");
      ignores("private_key", "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+g\n-----END CERTIFICATE-----");
      ignores("private_key", "the PRIVATE KEY is elsewhere");
    });
  });

  it("digitCandidates misses no match the digit regexes would find anywhere (randomized)", () => {
    // Reference: try every digit-triggered regex at every position. The scan must point at each place
    // the reference finds something, or the finder would miss it.
    const digitDetectors = DEFAULT_DETECTORS.filter((d) => d.matchers.some((m) => m.trigger === "digits"));
    const sticky = digitDetectors.flatMap((d) =>
      d.matchers.flatMap((m) => (m.trigger === "digits" ? [{ d, re: new RegExp(m.source, "y") }] : [])),
    );
    let seed = 42;
    const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0), (seed >>> 8) % n);
    const digits = (n: number) => Array.from({ length: n }, () => String(rnd(10))).join("");
    const groupSizes = [1, 2, 3, 3, 4, 4, 4, 5, 6, 13, 16];
    const seps = [" ", "-", ".", "", "  ", ") ", ":"];
    const noise = [" ", "x", "A", "AB", "/", "+", "(", "+1 (", "\n", "é"];
    const shapes = [
      "###-##-####",
      "###-###-####",
      "###.###.####",
      "1-###-###-####",
      "(###) ###-####",
      "+# ## #### ####",
      "+#(##)########",
      "4### #### #### ####",
      "5###-####-####-####",
      "################",
      "3### ###### #####",
      "### ### ###",
      "0## #### ####",
      "0#-####-####",
    ];
    const cluster = () => {
      if (rnd(2)) return shapes[rnd(shapes.length)]!.replace(/#/g, () => String(rnd(10)));
      let s = (rnd(4) === 0 ? "0" : "") + digits(groupSizes[rnd(groupSizes.length)]!);
      const sep = seps[rnd(seps.length)]!;
      for (let g = rnd(5); g > 0; g--)
        s += (rnd(6) ? sep : seps[rnd(seps.length)]!) + digits(groupSizes[rnd(groupSizes.length)]!);
      return s;
    };
    const digitOnly = compileMasker({ detectors: ["card", "phone"], columns: [], fields: [] });
    let precheckHits = 0;
    let ruledOut = 0;
    let found = 0;
    for (let round = 0; round < 4000; round++) {
      let text = "";
      while (text.length < 80) text += rnd(2) ? cluster() : noise[rnd(noise.length)]!;
      const candidates: number[] = [];
      const units = new Uint16Array(text.length);
      for (let i = 0; i < text.length; i++) units[i] = text.charCodeAt(i);
      digitCandidates(text, units, text.length, candidates);
      // The same text inside a larger array (a digit and a letter on either side), scanned in place.
      const wide = new Uint16Array(text.length + 4);
      wide.set([0x78, 0x39]);
      wide.set(units, 2);
      wide.set([0x39, 0x78], text.length + 2);
      const ranged: number[] = [];
      digitCandidates(undefined, wide, text.length + 2, ranged, 2);
      // The byte precheck of digit-only detectors says "maybe" wherever the scan points somewhere.
      const maybe = digitOnly.mayMatch(Uint8Array.from(wide), 2, text.length + 2);
      if (candidates.length > 0) assert.ok(maybe, JSON.stringify(text));
      if (maybe) precheckHits++;
      else ruledOut++;
      // (Openers come in one pass there, so in order; the text form lists every + before every ( .)
      assert.deepEqual(
        ranged.map((p) => p - 2).sort((a, b) => a - b),
        [...candidates].sort((a, b) => a - b),
        JSON.stringify(text),
      );
      for (let p = 0; p < text.length; p++) {
        for (const { d, re } of sticky) {
          re.lastIndex = p;
          const m = re.exec(text);
          if (m && d.validate(m, text)) {
            found++;
            assert.ok(candidates.includes(p), `missed ${d.name} at ${p} in ${JSON.stringify(text)}`);
          }
        }
      }
    }
    assert.ok(found > 1000, `only ${found} matches generated`);
    assert.ok(precheckHits > 1000, `precheck: ${precheckHits} maybe, ${ruledOut} ruled out`);
  });

  it("the byte precheck rules out only values the finder finds nothing in (randomized)", () => {
    const masker = compileMasker({ detectors: [...DETECTOR_NAMES], columns: [], fields: [] });
    const find = compileFinder(DEFAULT_DETECTORS);
    let seed = 7;
    const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0), (seed >>> 8) % n);
    const pieces = [
      "customer ",
      "active",
      "closed",
      "2024-01-01 00:00:01+00",
      "3.1415",
      "c4ca4238a0b923820dcc509a6f75849b",
      "4111 1111 1111 1111",
      "078-05-1120",
      "+44 20 7946 0958",
      "(555) 123-4567",
      "ann@example.com",
      "AB123456C",
      "AKIAIOSFODNN7EXAMPLE",
      "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
      "-----BEGIN PRIVATE KEY-----",
      "0",
      " ",
      "-",
      ".",
      "(",
      "+",
      "é",
      "12",
      "4111111111111111",
      "x",
      "ghp_",
      "sk_live_",
      "xoxb-",
      "+12345678",
      "+1234567",
      "1234567",
      "(555)",
      "123-4567",
    ];
    let ruledOut = 0;
    for (let round = 0; round < 20_000; round++) {
      let text = "";
      for (let k = 1 + rnd(4); k > 0; k--) text += pieces[rnd(pieces.length)]!;
      const bytes = Buffer.from(`9${text}x`, "latin1");
      if (!masker.mayMatch(bytes, 1, bytes.length - 1)) {
        ruledOut++;
        assert.equal(find(text), undefined, JSON.stringify(text));
      }
    }
    assert.ok(ruledOut > 1000, `only ${ruledOut} values ruled out`);
  });

  it("finds nothing (and runs no regex) in text without any trigger", () => {
    const find = compileFinder(DEFAULT_DETECTORS);
    assert.equal(find("plain words, a 2024-01-15 date, an ip 10.0.0.1 and id 12345"), undefined);
  });
});
