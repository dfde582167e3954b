package server

import _ "embed"

// OpenAPI is the API's OpenAPI 3.1 description, served at /openapi.yaml. A test checks that it
// names every route the server registers.
//
//go:embed openapi.yaml
var OpenAPI []byte
