// Validates a FHIR R4 Bundle (file argument) against the official R4 JSON schema: the Bundle and
// each entry's resource. Prints the errors and exits 1 when any.
const fs = require("fs");
const Validator = require("@asymmetrik/fhir-json-schema-validator");
const v = new Validator();
const bundle = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
let bad = 0;
const check = (what, r) => {
  const errs = v.validate(r, true);
  if (errs.length) {
    bad++;
    console.log(what + ": " + JSON.stringify(errs.slice(0, 5)));
  }
};
check("Bundle", bundle);
(bundle.entry || []).forEach((e, i) => check("entry[" + i + "]", e.resource));
console.log((bundle.entry || []).length + " resources checked, " + bad + " invalid");
process.exit(bad ? 1 : 0);
