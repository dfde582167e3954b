package redact

import (
	"strings"

	"github.com/agentaudit/agentaudit/internal/jsontok"
)

// Person names (the person_name detector). A value is pseudonymized as a person's name when
//
//  1. its field only ever holds a person's name: the normalized name ends with first_name,
//     last_name, middle_name, maiden_name, given_name, family_name, surname, forename(s),
//     full_name, real_name, preferred_name, birth_name, or a person's role and name
//     (customer_name, contact_name, cardholder_name, ...); or
//  2. its field is name, display_name, nickname or legal_name (given and family too) and its
//     object is a person record:
//     - the event is about a person (subject_type patient, person, customer, member, user, ...)
//     and the object is the top of the tool's arguments or result (or sits under data,
//     result, record, resource, subject, profile or demographics there), not inside a list;
//     - the object is under a member named for a person (patient, customer, contact, user,
//     author, emergency_contact, patients[...], ...);
//     - a sibling identifies a person: dob, date_of_birth, birth_date, ssn, mrn, patient_id,
//     customer_id, member_id, email, phone, address, first_name, ... or a PII field of the
//     policy;
//     - a sibling types it as a person: resourceType Patient, Person, Practitioner or
//     RelatedPerson (FHIR), @type Person, type/kind/object/role person, patient, customer,
//     user, ...;
//     - it is a FHIR HumanName (given and family), whose text is the name too;
//  3. or it is a part (first, last, middle, given, family, text, full) of an object that is
//     itself a name: the value of a member called name.
//
// An object under properties, patternProperties, definitions or $defs is a JSON Schema, not a
// record. A value shaped like an identifier rather than a name is left to the detectors: it has a
// digit or one of _ / \ : @ # = ? & { } [ ] < > | ~ ^ * $ % + " `, or it is a file name (.pdf),
// or lower-case words joined by '-' without a space (claude-opus, hello-world). So tool and
// function names (get_order), model names (gpt-4o) and file names are never taken for a
// person's name, and neither are the names in tool calls: their objects ({"name", "input"} or
// {"name", "arguments"}) are no person record. A key rule on the field wins (keep exempts it).
//
// The walker asks personName only for a member that maybeName lets through, or inside a name
// object: the usual member costs a few byte tests. Siblings are read (scanRecord) only for an
// object that has such a member and no cheaper answer.

// personNameKind is the detector's kind in a policy.
const personNameKind = "person_name"

// nameClass says where a field holds a person's name.
type nameClass uint8

const (
	nameAlways         nameClass = iota + 1 // wherever it is (first_name)
	nameInRecord                            // in a person record (name)
	nameInRecordOrPart                      // in a person record or a name object (given, family)
	namePart                                // in a name object only (first, last, text)
)

type nameField struct {
	kind  string // as the pseudonym shows it
	class nameClass
}

// exactNames are matched on the whole normalized name.
var exactNames = map[string]nameField{
	"name": {"name", nameInRecord}, "displayname": {"display_name", nameInRecord}, "nickname": {"nickname", nameInRecord},
	"legalname": {"legal_name", nameInRecord},
	"given":     {"given", nameInRecordOrPart}, "family": {"family", nameInRecordOrPart},
	"first": {"first_name", namePart}, "last": {"last_name", namePart}, "middle": {"middle_name", namePart},
	"text": {"name", namePart}, "full": {"name", namePart},
}

// nameSuffixes are fields that only hold a person's name, matched as key rules are: the
// normalized name ends with one (billing_first_name, patientFullName).
var nameSuffixes = []struct{ norm, kind string }{
	{"accountholdername", "account_holder_name"}, {"policyholdername", "policyholder_name"}, {"cardholdername", "cardholder_name"},
	{"beneficiaryname", "beneficiary_name"}, {"subscribername", "subscriber_name"}, {"preferredname", "preferred_name"},
	{"recipientname", "recipient_name"}, {"employeename", "employee_name"}, {"customername", "customer_name"},
	{"guardianname", "guardian_name"}, {"contactname", "contact_name"}, {"insuredname", "insured_name"},
	{"familyname", "family_name"}, {"maidenname", "maiden_name"}, {"middlename", "middle_name"}, {"personname", "person_name"},
	{"membername", "member_name"}, {"spousename", "spouse_name"}, {"givenname", "given_name"}, {"firstname", "first_name"},
	{"birthname", "birth_name"}, {"forenames", "forenames"}, {"lastname", "last_name"}, {"fullname", "full_name"},
	{"realname", "real_name"}, {"forename", "forename"}, {"surname", "surname"},
}

// nameKinds are the kinds above, for shownName.
func nameKinds() []string {
	var ks []string
	for _, f := range exactNames {
		ks = append(ks, f.kind)
	}
	for _, s := range nameSuffixes {
		ks = append(ks, s.kind)
	}
	return ks
}

// personSignals are sibling names that make an object a person record (normalized).
var personSignals = setOf("dob", "dateofbirth", "birthdate", "birthday", "ssn", "socialsecuritynumber", "nationalid",
	"mrn", "medicalrecordnumber", "patientid", "personid", "customerid", "memberid", "employeeid", "subscriberid",
	"email", "emailaddress", "phone", "phonenumber", "mobile", "mobilephone", "mobilenumber", "homephone", "workphone",
	"cellphone", "telephone", "telecom", "address", "homeaddress", "mailingaddress", "streetaddress", "postaladdress",
	"billingaddress", "shippingaddress",
	"firstname", "lastname", "givenname", "familyname", "surname", "middlename", "maidenname")

// personTypes are the values of a type-like member (resourceType, @type, type, kind, object,
// role) that make its object a person, and the event subject types about a person (normalized).
var personTypes = setOf("patient", "person", "practitioner", "relatedperson", "customer", "user", "member", "employee",
	"contact", "individual", "subscriber", "beneficiary", "enrollee", "student", "consumer", "citizen", "resident",
	"guest", "applicant", "candidate")

// typeKeys name a record's type (normalized).
var typeKeys = setOf("resourcetype", "type", "kind", "object", "role")

// personWords: an object under a member whose last word is one of these (or its plural) is a
// person record.
var personWords = setOf("patient", "person", "people", "customer", "member", "employee", "user", "contact", "guardian",
	"subscriber", "beneficiary", "insured", "guarantor", "spouse", "kin", "author", "practitioner", "physician", "doctor",
	"nurse", "caregiver", "cardholder", "policyholder", "accountholder", "assignee", "reporter", "requester", "reviewer",
	"approver", "recipient", "sender", "attendee", "participant", "applicant", "candidate", "student", "passenger",
	"traveler", "traveller", "guest", "individual", "relatedperson")

// schemaKeys hold JSON Schemas, whose members are field definitions, not values.
var schemaKeys = setOf("properties", "patternproperties", "definitions", "defs")

// envelopeKeys wrap a subject's record in a tool's arguments or result.
var envelopeKeys = setOf("data", "result", "record", "resource", "subject", "profile", "demographics")

func setOf(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

// personSubject reports whether an event's subject_type names a person.
func personSubject(subjectType string) bool {
	return subjectType != "" && personTypes[normalizeKey(subjectType)]
}

// normInto is normalizeKey for ASCII names, into buf without allocating; a name with bytes beyond
// ASCII goes through normalizeKey (which folds look-alikes).
func normInto(buf []byte, s string) []byte {
	if len(s) > 2 && (s[0] == 'x' || s[0] == 'X') && (s[1] == '-' || s[1] == '_') {
		s = s[2:]
	}
	b := buf[:0]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return append(buf[:0], normalizeKey(s)...)
		}
		if c = lowerByte(c); lowerAlnum(c) {
			b = append(b, c)
		}
	}
	return b
}

// lookupName returns how a field holds a person's name, if it does.
func lookupName(key string) (nameField, bool) {
	var buf [48]byte
	n := normInto(buf[:], key)
	if f, ok := exactNames[string(n)]; ok {
		return f, true
	}
	for _, s := range nameSuffixes {
		if len(n) >= len(s.norm) && string(n[len(n)-len(s.norm):]) == s.norm {
			return nameField{s.kind, nameAlways}, true
		}
	}
	return nameField{}, false
}

// record is what the name rule knows of the object being walked.
type record struct {
	start     int    // the '{' in the walker's input
	parentKey string // the member the object is the value of (or an element of)
	subject   bool   // the top of a person subject's arguments or result
	inName    bool   // the value of a member called name: a name object
	scanned   bool   // siblings read
	signal    bool   // a sibling identifies or types a person
	given     bool   // a given member
	family    bool   // a family member
	person    int8   // 0 not judged, 1 a person record, -1 not
}

// maybeName is the walker's filter: false when key cannot be a name field outside a name object.
// Every such field ends with "name" or "names", or is given or family (ASCII case aside), so its
// last two bytes are "me", "es", "en" or "ly": nameEnding, small enough to inline, tests that
// for every member; maybeNameTail the rest.
func maybeName(k string) bool { return nameEnding(k) && maybeNameTail(k) }

func nameEnding(k string) bool {
	n := len(k)
	return n >= 4 && nameLast[k[n-1]]&namePrev[k[n-2]] != 0
}

// nameLast and namePrev code those two-byte endings: a bit per ending, set for its last and its
// next-to-last byte, either case.
var nameLast, namePrev = func() (last, prev [256]uint8) {
	for i, e := range []string{"me", "es", "en", "ly"} {
		for _, c := range []byte{e[0], e[0] - 'a' + 'A'} {
			prev[c] |= 1 << i
		}
		for _, c := range []byte{e[1], e[1] - 'a' + 'A'} {
			last[c] |= 1 << i
		}
	}
	return
}()

func maybeNameTail(k string) bool {
	n := len(k)
	if n >= 5 && k[n-1]|0x20 == 's' {
		n--
	}
	return n >= 4 && k[n-1]|0x20 == 'e' && k[n-2]|0x20 == 'm' && k[n-3]|0x20 == 'a' && k[n-4]|0x20 == 'n' ||
		len(k) == 5 && hasFold(k, 0, "given") || len(k) == 6 && hasFold(k, 0, "family")
}

// personName returns the kind under which member key of rec holds a person's name, or "".
func (w *walker) personName(rec *record, key string) string {
	f, ok := lookupName(key)
	if !ok {
		return ""
	}
	switch f.class {
	case nameAlways:
		return f.kind
	case nameInRecord:
		if w.isPerson(rec) {
			return f.kind
		}
	case nameInRecordOrPart:
		if rec.inName || w.isPerson(rec) {
			return f.kind
		}
	case namePart:
		if rec.inName {
			return f.kind
		}
		if w.scanRecord(rec); rec.given && rec.family {
			return f.kind
		}
	}
	return ""
}

// isPerson judges, once per object, whether rec is a person record.
func (w *walker) isPerson(rec *record) bool {
	if rec.person != 0 {
		return rec.person > 0
	}
	rec.person = -1
	parent := lastWord(rec.parentKey)
	switch {
	case schemaKeys[normalizeKey(rec.parentKey)]:
	case rec.subject || personWords[parent] || personWords[strings.TrimSuffix(parent, "s")]:
		rec.person = 1
	default:
		if w.scanRecord(rec); rec.signal || rec.given && rec.family {
			rec.person = 1
		}
	}
	return rec.person > 0
}

// scanRecord reads the member names of the object at rec.start, and the values of its type-like
// members, skipping the other values, with a scanner of its own: the walker's position stays.
// Malformed input ends the reading (the walk itself reports it).
func (w *walker) scanRecord(rec *record) {
	if rec.scanned {
		return
	}
	rec.scanned = true
	sc := jsontok.Scanner{In: w.In, Pos: rec.start}
	var buf [48]byte
	for more := sc.Open(); more; more = sc.Comma() {
		k, err := sc.Name(nil)
		if err != nil || sc.Colon() != nil {
			return
		}
		n := normInto(buf[:], string(k))
		switch {
		case personSignals[string(n)] || w.r.keys.isPII(string(n)):
			rec.signal = true
		case string(n) == "given":
			rec.given = true
		case string(n) == "family":
			rec.family = true
		case typeKeys[string(n)] && sc.Kind() == jsontok.String:
			v, err := sc.String(nil)
			if err != nil {
				return
			}
			if personTypes[string(normInto(buf[:], string(v)))] {
				rec.signal = true
			}
			continue
		}
		if sc.Skip() != nil {
			return
		}
	}
}

// nameLike reports whether a value may be a person's name rather than an identifier, a file name
// or a model name (see the package comment above).
func nameLike(v string) bool {
	letter, space, upper, hyphen := false, false, false, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c >= 'a' && c <= 'z':
			letter = true
		case c >= 'A' && c <= 'Z':
			letter, upper = true, true
		case c >= 0x80:
			letter = true // a name in another script
		case c == ' ':
			space = true
		case c == '-':
			hyphen = true
		case c == '.' || c == '\'' || c == ',' || c == '(' || c == ')':
		default: // digits, control characters, _ / \ : @ # = ? & { } [ ] < > | ~ ^ * $ % + " `
			return false
		}
	}
	if !letter || hyphen && !space && !upper {
		return false
	}
	// A file name: an extension of one to five small letters after a non-space.
	if dot := strings.LastIndexByte(v, '.'); dot > 0 && v[dot-1] != ' ' && len(v)-dot-1 >= 1 && len(v)-dot-1 <= 5 {
		ext := v[dot+1:]
		if strings.IndexFunc(ext, func(r rune) bool { return r < 'a' || r > 'z' }) < 0 {
			return false
		}
	}
	return true
}
