// verify.js checks an agentaudit inclusion bundle in the browser, trusting nothing the server
// says about it: the event's RFC 6962 leaf hash SHA-256(0x00 ‖ salt ‖ canonical event) is
// recomputed, the inclusion proof is walked to the root exactly as golang.org/x/mod/sumdb/tlog's
// CheckRecord does (RFC 6962 §2.1.1), and the C2SP checkpoint note holding that root is checked
// against an Ed25519 verifier key in golang.org/x/mod/sumdb/note's format that the user supplies.
// Only WebCrypto is used. The Go test server/console_browser_test.go runs it on real bundles.

const enc = new TextEncoder();

/** VerifyError says exactly which step failed. */
export class VerifyError extends Error {
  constructor(step, message) {
    super(`${step}: ${message}`);
    this.step = step;
  }
}

function b64(s, what) {
  let bin;
  try {
    bin = atob(s);
  } catch {
    throw new VerifyError(what, "not valid base64");
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function equal(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function hex(b) {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

async function sha256(...parts) {
  if (!globalThis.crypto || !crypto.subtle) {
    throw new VerifyError("crypto", "WebCrypto is unavailable: open the console over HTTPS or on localhost");
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", concat(...parts)));
}

/**
 * canonicalize returns the RFC 8785 (JCS) serialization of a JSON value: members sorted by
 * UTF-16 code units, ECMAScript number and string serialization. It is how agentaudit hashes
 * an event, so the bytes of a delivered event are recovered exactly (integers beyond 2^53 would
 * not be, and would fail the check rather than pass it).
 */
export function canonicalize(v) {
  if (v === null || typeof v !== "object") {
    if (typeof v === "number" && !Number.isFinite(v)) throw new VerifyError("event", "non-finite number");
    return JSON.stringify(v);
  }
  if (Array.isArray(v)) return "[" + v.map(canonicalize).join(",") + "]";
  const keys = Object.keys(v).sort();
  return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonicalize(v[k])).join(",") + "}";
}

/** leafHash is RFC 6962's leaf hash of salt ‖ body. */
export function leafHash(salt, body) {
  return sha256(new Uint8Array([0]), salt, body);
}

function nodeHash(l, r) {
  return sha256(new Uint8Array([1]), l, r);
}

// maxpow2 returns the largest power of two strictly less than n (n > 1), as tlog's maxpow2.
function maxpow2(n) {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

// runRecordProof mirrors tlog.runRecordProof: the root of [lo, hi) given leaf n's hash and p.
async function runRecordProof(p, lo, hi, n, h) {
  if (lo + 1 === hi) {
    if (p.length !== 0) throw new VerifyError("inclusion proof", "longer than the tree needs");
    return h;
  }
  if (p.length === 0) throw new VerifyError("inclusion proof", "shorter than the tree needs");
  const k = maxpow2(hi - lo);
  const last = p[p.length - 1];
  const rest = p.slice(0, -1);
  if (n < lo + k) return nodeHash(await runRecordProof(rest, lo, lo + k, n, h), last);
  return nodeHash(last, await runRecordProof(rest, lo + k, hi, n, h));
}

/** rootFromProof walks an inclusion proof of leaf n in a tree of size t to the root. */
export async function rootFromProof(proof, t, n, leaf) {
  if (!(Number.isSafeInteger(t) && Number.isSafeInteger(n)) || n < 0 || n >= t) {
    throw new VerifyError("inclusion proof", `seq ${n} is not in a tree of size ${t}`);
  }
  return runRecordProof(proof, 0, t, n, leaf);
}

/** parseVerifierKey parses "name+hexhash+base64(0x01 ‖ public key)" and checks its key hash. */
export async function parseVerifierKey(text) {
  const s = String(text || "").trim();
  // As note.NewVerifier: the name ends at the first "+", the hash at the second; base64 may hold "+".
  const i = s.indexOf("+");
  const j = s.indexOf("+", i + 1);
  if (i < 0 || j < 0) throw new VerifyError("verifier key", "want name+hash+key, as in the data directory's verifier.key");
  const [name, hashHex, keyB64] = [s.slice(0, i), s.slice(i + 1, j), s.slice(j + 1)];
  if (name === "" || /[\s+]/.test(name)) throw new VerifyError("verifier key", "the name is empty or has spaces");
  if (!/^[0-9a-f]{8}$/.test(hashHex)) throw new VerifyError("verifier key", "the key hash is not 8 hex digits");
  const key = b64(keyB64, "verifier key");
  if (key.length !== 33 || key[0] !== 1) {
    throw new VerifyError("verifier key", "not an Ed25519 key (want algorithm byte 1 and 32 bytes)");
  }
  const hash = hex((await sha256(enc.encode(name + "\n"), key)).slice(0, 4));
  if (hash !== hashHex) throw new VerifyError("verifier key", `key hash ${hashHex} does not match the key (${hash})`);
  return { name, hash, publicKey: key.slice(1), text: s };
}

/** parseNote splits a signed note into its text and signature lines, as note.Open does. */
export function parseNote(msg) {
  const i = msg.lastIndexOf("\n\n");
  if (i < 0 || !msg.endsWith("\n")) throw new VerifyError("checkpoint", "not a signed note (no blank line before signatures)");
  const text = msg.slice(0, i + 1);
  const sigs = [];
  for (const line of msg.slice(i + 2, -1).split("\n")) {
    const m = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (!m) throw new VerifyError("checkpoint", `malformed signature line ${JSON.stringify(line)}`);
    sigs.push({ name: m[1], sig: b64(m[2], "checkpoint signature") });
  }
  return { text, sigs };
}

/** parseCheckpoint reads a C2SP tlog-checkpoint body: origin, tree size, root hash. */
export function parseCheckpoint(text) {
  const lines = text.split("\n");
  if (lines.length < 4 || !/^[1-9][0-9]*$|^0$/.test(lines[1])) {
    throw new VerifyError("checkpoint", "want origin, tree size and root hash lines");
  }
  const size = Number(lines[1]);
  if (!Number.isSafeInteger(size)) throw new VerifyError("checkpoint", "tree size out of range");
  const root = b64(lines[2], "checkpoint root");
  if (root.length !== 32) throw new VerifyError("checkpoint", "root hash is not 32 bytes");
  return { origin: lines[0], size, root };
}

/** verifySignature checks that the note is signed by key (parsed with parseVerifierKey). */
export async function verifySignature(note, key) {
  const mine = note.sigs.filter((s) => s.name === key.name && s.sig.length === 68 && hex(s.sig.slice(0, 4)) === key.hash);
  if (mine.length === 0) {
    const names = note.sigs.map((s) => s.name).join(", ") || "none";
    throw new VerifyError("signature", `the checkpoint carries no signature by ${key.name}+${key.hash} (signed by: ${names})`);
  }
  let pub;
  try {
    pub = await crypto.subtle.importKey("raw", key.publicKey, { name: "Ed25519" }, false, ["verify"]);
  } catch (e) {
    throw new VerifyError("signature", `this browser cannot import Ed25519 keys (${e.message})`);
  }
  for (const s of mine) {
    if (await crypto.subtle.verify({ name: "Ed25519" }, pub, s.sig.slice(4), enc.encode(note.text))) return;
  }
  throw new VerifyError("signature", `the Ed25519 signature by ${key.name} does not verify: the checkpoint text was altered or signed by another key`);
}

/**
 * verifyBundle checks an inclusion bundle (the parsed JSON of GET /v1/proofs/inclusion) against a
 * verifier key string. It resolves to {seq, size, origin, key, leaf, message} or throws a
 * VerifyError naming the failed step.
 */
export async function verifyBundle(bundle, verifierKey) {
  if (!bundle || bundle.format === undefined || typeof bundle.checkpoint !== "string" || !Array.isArray(bundle.proof)) {
    throw new VerifyError("bundle", "not an agentaudit inclusion bundle");
  }
  const key = await parseVerifierKey(verifierKey);
  const note = parseNote(bundle.checkpoint);
  await verifySignature(note, key);
  const cp = parseCheckpoint(note.text);
  let leaf;
  if (bundle.event === null || bundle.event === undefined) {
    if (!bundle.leaf) throw new VerifyError("event", "the bundle has neither the event nor its leaf");
    leaf = b64(bundle.leaf, "leaf"); // a purged event: only its committed leaf remains
  } else {
    leaf = await leafHash(b64(bundle.salt, "salt"), enc.encode(canonicalize(bundle.event)));
  }
  const proof = bundle.proof.map((h, i) => {
    const b = b64(h, `proof hash ${i}`);
    if (b.length !== 32) throw new VerifyError("inclusion proof", `hash ${i} is not 32 bytes`);
    return b;
  });
  const root = await rootFromProof(proof, cp.size, bundle.seq, leaf);
  if (!equal(root, cp.root)) {
    throw new VerifyError(
      "inclusion proof",
      `the event at seq ${bundle.seq} does not hash to the signed root of checkpoint ${cp.size}: the event, its salt or the proof was altered (computed root ${hex(root).slice(0, 16)}…, signed root ${hex(cp.root).slice(0, 16)}…)`
    );
  }
  return {
    seq: bundle.seq,
    size: cp.size,
    origin: cp.origin,
    key: `${key.name}+${key.hash}`,
    leaf: hex(leaf),
    purged: bundle.event === null || bundle.event === undefined,
    message: `verified against checkpoint ${cp.size} signed by ${key.name}+${key.hash}`,
  };
}
