# generate_hard.py writes hard_positive.jsonl and hard_negative.jsonl (and near_*.jsonl: secret prefixes; person_*.jsonl: names): fake secrets generated to
# match each format (valid Luhn, mod 97, gitleaks shapes), and near misses. Run it here; the seed is fixed.
import json, random, string
random.seed(20261124)
R = random.Random(7)
def luhn_complete(prefix, length):
    digits = [int(c) for c in prefix]
    while len(digits) < length - 1:
        digits.append(R.randint(0, 9))
    for check in range(10):
        d = digits + [check]
        s = 0
        for i, v in enumerate(reversed(d)):
            if i % 2 == 1:
                v *= 2
                if v > 9: v -= 9
            s += v
        if s % 10 == 0:
            return ''.join(map(str, d))
def luhn_bad(prefix, length):
    good = luhn_complete(prefix, length)
    last = (int(good[-1]) + 1) % 10
    return good[:-1] + str(last)
def grp(n, sizes, sep):
    out, i = [], 0
    for s in sizes:
        out.append(n[i:i+s]); i += s
    return sep.join(out)
def iban(cc, bban):
    s = bban + cc + "00"
    num = ''.join(str(int(c, 36)) for c in s)
    check = 98 - int(num) % 97
    return f"{cc}{check:02d}{bban}"
def rnd(alpha, n): return ''.join(R.choice(alpha) for _ in range(n))
AN = string.ascii_letters + string.digits
pos, neg = [], []
def P(kind, text, secret): pos.append({"kind": kind, "text": text, "secret": secret})
def PJ(kind, obj, secret): pos.append({"kind": kind, "json": obj, "secret": secret})
def N(kind, text): neg.append({"kind": kind, "text": text})
def NJ(kind, obj): neg.append({"kind": kind, "json": obj})

# credit cards
for prefix, length, sizes in [("4", 16, [4,4,4,4]), ("51", 16, [4,4,4,4]), ("2221", 16, [4,4,4,4]), ("37", 15, [4,6,5]), ("6011", 16, [4,4,4,4]), ("36", 14, [4,6,4]), ("4", 19, [4,4,4,4,3]), ("3528", 16, [4,4,4,4])]:
    c = luhn_complete(prefix, length)
    P("credit_card", f"card {grp(c, sizes, ' ')} exp 12/27 cvv 123", grp(c, sizes, ' '))
    P("credit_card", f"{grp(c, sizes, ' ')} 321", grp(c, sizes, ' '))
    PJ("credit_card", {"payment": {"methods": [{"type": "card", "pan": c}]}}, c)
    N("credit_card", f"ref {grp(luhn_bad(prefix, length), sizes, ' ')} (typo)")
c = luhn_complete("4", 16)
PJ("credit_card", {"n": int(c)}, c)
PJ("credit_card", {"msg": json.dumps({"card": {"digits": grp(c, [4,4,4,4], '-')}})}, grp(c, [4,4,4,4], '-'))
for i in range(6):
    N("credit_card", f"event at {1700000000000 + R.randint(0, 10**11)} ms")   # ms timestamps start with 1
    N("credit_card", f"trace id {R.randint(10**18, 9*10**18)}{R.randint(0,9)}")  # 20 digits: too long
N("credit_card", "codes 4111 1111 and 4111 1111 1111")
N("credit_card", "ids 1 2 3 4 5 6 7 8 9 10 11 12 13 14")
N("credit_card", "amount 1,234,567.89 USD")
N("credit_card", "ORD-4111111111111111")
# SSN
for s in ["078-05-1120", "219-09-9999", "457-55-5462", "536-22-8726", "123-45-6789"]:
    P("ssn", f"SSN {s} on file", s)
    PJ("ssn", {"applicant": {"notes": f"gave {s} over the phone"}}, s)
for s in ["000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000"]:
    N("ssn", f"reference {s}")
for s in ["ORD-123-45-6789", "v123-45-6789", "123-45-67890", "2024-01-15", "12-345-6789", "123-45-6789-01"]:
    N("ssn", f"see {s} for details")
# email
for e in ["jane.doe@example.com", "J.Smith+billing@Example.co.uk", "ops_team@sub.example.org", "x@y.io"]:
    P("email", f"Contact: {e}.", e)
    P("email", f"https://crm.example.com/users/{e}/edit", e)
    PJ("email", {"to": [{"name": "J", "addr": e}]}, e)
for t in ["logo@2x.png", "git@github.com:org/repo.git", "@channel please review", "user@localhost", "npm i lodash@4.17.21", "a@b", "@scope/pkg@^2.0.0"]:
    N("email", t)
# phone
for p in ["+44 20 7946 0958", "+49 30 12345678", "+33 1 23 45 67 89", "(415) 555-0134", "415-555-0134", "415.555.0134", "+14155550134", "+1 (415) 555-0134", "+81 3-1234-5678", "1-800-555-0199"]:
    P("phone", f"call me at {p} tomorrow", p)
PJ("phone", {"contact": {"mobile": "+44 7700 900123"}}, "+44 7700 900123")
for t in ["build 20240115123456", "meeting 10:30-11:45", "dated 2024-01-15 09:30:00", "order 12345678901", "ISBN 978-3-16-148410-0",
          "from 192.168.100.200", "version 1.22.333.4444", "5 + 3 = 8", "+1 vote from the team", "count 4155550134"]:
    N("phone", t)
# IBAN
for cc, bban in [("DE", "370400440532013000"), ("GB", "NWBK60161331926819"), ("FR", "20041010050500013M02606"), ("NL", "ABNA0417164300"), ("ES", "21000418450200051332")]:
    ib = iban(cc, bban)
    spaced = ' '.join(ib[i:i+4] for i in range(0, len(ib), 4))
    P("iban", f"IBAN: {ib}", ib)
    P("iban", f"pay to {spaced} THANKS", spaced)
    bad = ib[:2] + f"{(int(ib[2:4]) + 1) % 100:02d}" + ib[4:]
    N("iban", f"IBAN: {bad}")
N("iban", "GB82WEST12345698765432 is the example from the spec") if False else None
N("iban", "ticket AB12 CDEF GHIJ KLMN")
# JWT / bearer
import base64
def b64(d): return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
for i in range(5):
    jwt = b64({"alg": "HS256", "typ": "JWT"}) + "." + b64({"sub": str(R.randint(1, 10**9)), "iat": 1700000000 + i}) + "." + rnd(AN + "-_", 43)
    P("jwt", f"token={jwt}", jwt)
    PJ("jwt", {"headers": [["Cookie", f"session={jwt}"]]}, jwt)
    tok = rnd(AN, 32)
    P("bearer_token", f"Authorization header was Bearer {tok}", tok)
for t in ["Bearer authentication is required", "the bearer of this letter", "use a bearer token", "Bearer tokens expire hourly"]:
    N("bearer_token", t)
# PEM
body = "\n".join(rnd(AN + "+/", 64) for _ in range(6))
pem = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
P("pem_private_key", f"key:\n{pem}\ndone", body.split("\n")[2])
PJ("pem_private_key", {"files": [{"name": "id_rsa", "content": pem}]}, body.split("\n")[3])
P("pem_private_key", f"-----BEGIN OPENSSH PRIVATE KEY-----\n{body}", body.split("\n")[5])  # cut off, no END
N("pem_private_key", "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIU\n-----END CERTIFICATE-----")
N("pem_private_key", "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----")
# URL credentials and key=value
for i in range(4):
    pw = rnd(AN, 14)
    P("url_credentials", f"DATABASE_URL=postgres://app:{pw}@db.internal:5432/app", pw)
    P("url_credentials", f"fetch https://deploy:{pw}@git.example.com/repo.git", pw)
    k = rnd(AN, 24)
    P("key_value", f"GET /v1/search?q=shoes&api_key={k}&page=2", k)
    P("key_value", f"request headers:\nX-Api-Key: {k}\nAccept: application/json", k)
    P("key_value", f"./deploy --db-password={pw} --verbose", pw)
    PJ("key_value", {"log": f'{{"user": "bob", "password": "{pw}", "retry": tru'}, pw)  # broken JSON in a string
    P("key_value", f"Cookie: sessionid={k}; theme=dark", k)
for t in ["max_tokens=1024 temperature=0.2", "input_tokens: 55, output_tokens: 210", "the token: expired", "password: ********",
          "reset your password: follow the link", "api_key=null", "token_count=42", "see https://example.com/docs?page=2&sort=asc", "postgres://db.internal:5432/app",
          "keyboard: us", "monkey=banana"]:
    N("key_value", t)
# gitleaks formats (fake, generated to match the rules)
B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
for i in range(5):
    aws = "AKIA" + rnd(B32, 16)
    P("aws-access-token", f"aws_access_key_id = {aws}", aws)
    PJ("aws-access-token", {"env": [{"name": "AWS_KEY", "value": aws}]}, aws)
    ghp = "ghp_" + rnd(AN, 36)
    P("github-pat", f"git clone https://{ghp}@github.com/org/repo", ghp)
    PJ("github-pat", {"args": json.dumps({"token": {"v": ghp}})}, ghp)
    gho = "gho_" + rnd(AN, 36)
    P("github-oauth", f"oauth {gho}", gho)
    fg = "github_pat_" + rnd(AN + "_", 82)
    P("github-fine-grained-pat", f"GH_TOKEN={fg}", fg)
    oa = "sk-proj-" + rnd(AN + "_-", 74) + "T3BlbkFJ" + rnd(AN + "_-", 74)
    P("openai-api-key", f"OPENAI_API_KEY={oa}", oa)
    PJ("openai-api-key", {"messages": [{"role": "user", "content": f"here is my key {oa} please debug"}]}, oa)
    an = "sk-ant-api03-" + rnd(AN + "_-", 93) + "AA"
    P("anthropic-api-key", f"x-api-key: {an}", an)
    PJ("anthropic-api-key", {"config": {"providers": [{"id": "anthropic", "k": an}]}}, an)
    sl = f"xoxb-{R.randint(10**10, 10**11)}-{R.randint(10**11, 10**12)}-{rnd(AN, 24)}"
    P("slack-bot-token", f"slack token {sl}", sl)
    st = "sk_live_" + rnd(AN, 32)
    P("stripe-access-token", f"stripe.api_key = '{st}'", st)
    gcp = "AIza" + rnd(AN + "_-", 35)
    P("gcp-api-key", f"maps key {gcp}", gcp)
N("aws-access-token", "AKIAIOSFODNN7EXAMPLE")
N("aws-access-token", "the AKIA prefix marks long-term keys")
N("github-pat", "tokens look like ghp_ followed by 36 characters")
N("stripe-access-token", "sk_live_ keys must never be committed")
N("openai-api-key", "export OPENAI_API_KEY=$OPENAI_API_KEY")
N("slack-bot-token", "bot tokens start with xoxb-")
# plain text that must stay
for t in ["Cannot cancel shipped order", "customer asked to cancel before delivery", "status: shipped", "uuid 3f2504e0-4f89-11d3-9a0c-0305e82c3301",
          "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "commit 1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b", "2026-03-01T10:00:00Z",
          "Total: $1,299.00 (3 items)", "Temperature 98.6F, pulse 72, BP 120/80", "https://docs.example.com/api/v2/orders?status=open"]:
    N("text", t)
NJ("text", {"order_id": "ORD-456", "max_tokens": 1024, "usage": {"input_tokens": 55, "output_tokens": 210, "total_tokens": 265}, "token_count": 3})
NJ("text", {"items": [{"sku": "SKU-1", "qty": 2}], "created": 1700000000000, "secret_name": "prod/db", "api_key_id": "key_123"})
NJ("text", {"has_password": True, "password": None, "tokens": [1, 2, 3]})

# Near misses of well-known secret prefixes (the secret_prefix detector) and look-alikes that are
# not secrets; their own files and random source, so the samples above stay as they are.
Q = random.Random(11)
def qr(alpha, n): return ''.join(Q.choice(alpha) for _ in range(n))
B62, B64U, HEX = AN, AN + "-_", "0123456789abcdef"
def swap(s, alpha):  # one character of s replaced by one from alpha
    i = Q.randrange(len(s))
    return s[:i] + Q.choice(alpha) + s[i+1:]
near = [
    "sk-proj-" + qr(B62, 48), "sk-proj-" + qr(B62, 48), "sk-proj-" + qr(B64U, 120),
    "sk-" + qr(B62, 48), "sk-" + qr(B62, 40), "sk-svcacct-" + qr(B64U, 60),
    "sk-ant-api03-" + qr(B64U, 80), "sk-ant-admin01-" + qr(B64U, 70), "sk-" + qr(HEX, 32),
    "AKIA" + swap(qr(B32, 16), "0189"), "AKIA" + swap(qr(B32, 16), "0189"), "AKIA" + swap(qr(B32, 16), "abcxyz"),
    "ASIA" + swap(qr(B32, 16), "0189"), "ASIA" + swap(qr(B32, 16), "0189"),
    "ghp_" + qr(B62, 30), "ghp_" + qr(B62, 40), "gho_" + qr(B62, 35), "ghu_" + qr(B62, 35), "ghs_" + qr(B62, 38), "ghr_" + qr(B62, 30),
    "github_pat_" + qr(B62, 22) + "_" + qr(B62, 50),
    "xoxb-" + qr("0123456789", 10) + "-" + qr(B62, 24), "xoxp-" + qr("0123456789", 11) + "-" + qr(B62, 30),
    "xoxa-" + qr(B62, 30), "xoxr-" + qr(B62, 30),
    "glpat-" + qr(B62, 18), "glpat-" + qr(B62, 26),
    "AIza" + qr(B64U, 33), "AIza" + qr(B64U, 37),
    "npm_" + qr(B62, 32), "pypi-" + qr(B64U, 90), "hf_" + qr(string.ascii_letters, 31),
    "sk_live_" + qr(B62, 24), "rk_live_" + qr(B62, 30), "sk_test_" + qr(B62, 20),
    "gsk_" + qr(B62, 52), "xai-" + qr(B62, 80), "pplx-" + qr(B62, 45), "r8_" + qr(B62, 37),
    "dop_v1_" + qr(HEX, 62), "shpat_" + qr(HEX, 30),
]
texts = ["my key is {k}, thanks", "export API_KEY_2={k}", "Error: invalid credentials '{k}'", "pasted: {k}.", "curl -H 'X-Key: {k}' https://api.example.com"]
jsons = [lambda k: {"stdout": f"KEY={k}\n"}, lambda k: {"content": [{"type": "text", "text": f"found {k} in .env"}]},
         lambda k: {"env": {"CI_VALUE": k}}, lambda k: {"lines": ["config:", f"  key: {k}"]}]
npos, nneg = [], []
for i, k in enumerate(near):
    npos.append({"kind": "secret_prefix", "text": texts[i % len(texts)].format(k=k), "secret": k})
    npos.append({"kind": "secret_prefix", "json": jsons[i % len(jsons)](k), "secret": k})
def b64blob(n, inserts):
    s = qr(AN + "+/", n)
    for ins in inserts:
        i = Q.randrange(1, len(s) - 1)
        s = s[:i] + ins + s[i:]
    return "data:image/png;base64," + s + "=="
lookalikes = [
    "see task-list and ask-me-anything", "the mask-image property", "disk-usage at 91%", "risk-assessment-2024-q3",
    "desk-booking for tomorrow", "kiosk-mode enabled", "whisk-eggs-for-2-minutes", "pip install flask-sqlalchemy scikit-learn sk-learn",
    '<div class="sk-fading-circle"><div class="sk-circle1 sk-child"></div><div class="sk-cube-grid sk-spinner-wave-rect5"></div></div>',
    ".sk-folding-cube .sk-cube2 { transform: rotateZ(90deg); }", "sk-learn-tutorial-for-beginners-2024",
    "task-3f2504e0-4f89-11d3-9a0c-0305e82c3301", "sk-" + "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
    "sk-" + qr(HEX, 40), "disk-" + qr(HEX, 40), "mask-" + qr(B62, 40), "ask-" + qr(B62, 48), "task_" + qr(B62, 40),
    "commit " + qr(HEX, 40) + " and uuid 9b2d5e7a-1c3f-4e8b-a6d0-2f4c8e1b7a93",
    "AKIAVERYLONGWORD", "AKIAVeryLongWordHere", "AKIAIOSFODNN7EXAMPLE", "ASIA-PACIFIC region", "ASIAPACIFICREGIONS",
    "sk-YOUR_API_KEY_HERE", "sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "sk-...", "sk-********", "xoxb-your-bot-token-here",
    "ghp_XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "glpat-xxxxxxxxxxxxxxxxxxxx", "AIzaSy-your-key", "npm_config_cache=/tmp/npm npm_package_version=1.2.3",
    "hf_hub_download(repo_id) and hf_transfer", "ghp_token_placeholder", "github_pat_goes_here", "pypi-upload-token", "r8_client",
    b64blob(1200, ["AKIA" + swap(qr(B32, 16), "0189"), "AIza" + qr(B62, 35), "sk" + qr(B62, 48)]),
    b64blob(800, ["+AKIA" + swap(qr(B32, 16), "0189") + "+", "/AIza" + qr(B62, 35) + "/"]),
]
for t in lookalikes:
    nneg.append({"kind": "secret_prefix", "text": t})
nneg.append({"kind": "secret_prefix", "json": {"html": lookalikes[8], "classes": ["sk-circle", "sk-bounce1", "sk-double-bounce"]}})
nneg.append({"kind": "secret_prefix", "json": {"commit": {"sha": qr(HEX, 40), "branch": "task-list-cleanup"}, "id": "3f2504e0-4f89-11d3-9a0c-0305e82c3301"}})
nneg.append({"kind": "secret_prefix", "json": {"image": b64blob(1500, ["AKIA" + qr(B32, 16), "AIza" + qr(B62, 35)])}})
with open("near_positive.jsonl", "w") as f:
    for p in npos: f.write(json.dumps(p) + "\n")
with open("near_negative.jsonl", "w") as f:
    for n in nneg: f.write(json.dumps(n) + "\n")
print(len(npos), len(nneg))
# Person names in records (the person_name detector), and names of tools, models, files and
# things that must stay.
FIRST = ["Alex", "Maria", "Jamie", "Wei", "Olga", "Kwame", "Priya", "José"]
LAST = ["Doe", "Garcia", "Okafor", "Nguyen", "Ivanova", "Mensah", "Sharma", "Müller"]
ppos, pneg = [], []
for i in range(8):
    fn, ln = FIRST[i], LAST[(i * 3) % 8]
    full = f"{fn} {ln}"
    ppos.append({"kind": "name", "json": {"customer_id": f"C-{1000 + i}", "name": full, "email": f"{fn.lower()}.{i}@example.com"}, "secret": full})
    ppos.append({"kind": "name", "json": {"resourceType": "Patient", "id": f"p{i}", "name": [{"use": "official", "family": ln, "given": [fn]}], "birthDate": "1980-01-0" + str(i + 1)}, "secret": ln})
    ppos.append({"kind": "name", "json": {"order_id": f"O-{i}", "customer": {"name": full, "tier": "gold"}}, "secret": full})
    ppos.append({"kind": "name", "json": {"first_name": fn, "last_name": ln, "plan": "basic"}, "secret": ln})
    ppos.append({"kind": "name", "json": {"content": [{"type": "text", "text": json.dumps({"name": full, "dob": "1970-05-0" + str(i + 1), "mrn": f"M{i}"})}]}, "secret": full})
tool_names = ["get_order", "search", "lookup_patient", "sendEmail", "calculator", "web.search", "fs/read_file", "create-ticket"]
for i, tn in enumerate(tool_names):
    pneg.append({"kind": "name", "json": [{"type": "tool_use", "id": f"toolu_{i}", "name": tn, "input": {"patient_id": "P-1", "dob": None}}]})
    pneg.append({"kind": "name", "json": [{"id": f"call_{i}", "type": "function", "function": {"name": tn, "arguments": "{\"order_id\":\"O-1\"}"}}]})
    pneg.append({"kind": "name", "json": {"name": tn, "description": "a tool", "input_schema": {"type": "object", "properties": {"name": {"type": "string"}, "email": {"type": "string"}, "patient_id": {"type": "string"}}}}})
for m in ["gpt-4o", "claude-opus-4-6", "gemini-2.5-pro", "llama-3.1-70b-instruct", "mistral-large"]:
    pneg.append({"kind": "name", "json": {"model": {"name": m, "provider": "x", "patient_id": "P-1"}}})
for f in ["report.pdf", "Discharge Summary.docx", "scan_001.png", "notes.txt", "README.md"]:
    pneg.append({"kind": "name", "json": {"files": [{"name": f, "size": 1024, "patient_id": "P-1"}]}})
pneg.append({"kind": "name", "json": {"name": "Hello-World", "full_name": "octocat/Hello-World", "owner": {"login": "octocat"}}})
pneg.append({"kind": "name", "json": {"channels": [{"id": "C1", "name": "general"}, {"id": "C2", "name": "Random Chatter"}]}})
pneg.append({"kind": "name", "json": {"products": [{"name": "Blue Mug", "price": 9.5}, {"name": "Widget", "sku": "W-1"}]}})
pneg.append({"kind": "name", "json": {"medications": [{"name": "Amoxicillin", "dose": "500mg"}], "patient_id": "P-1"}})
pneg.append({"kind": "name", "json": {"font": {"family": "Roboto", "weight": 400}, "role": "assistant", "name": "support-bot"}})
with open("person_positive.jsonl", "w") as f:
    for p in ppos: f.write(json.dumps(p, ensure_ascii=False) + "\n")
with open("person_negative.jsonl", "w") as f:
    for n in pneg: f.write(json.dumps(n, ensure_ascii=False) + "\n")
print(len(ppos), len(pneg))
with open("hard_positive.jsonl", "w") as f:
    for p in pos: f.write(json.dumps(p) + "\n")
with open("hard_negative.jsonl", "w") as f:
    for n in neg:
        if n: f.write(json.dumps(n) + "\n")
print(len(pos), len(neg))
