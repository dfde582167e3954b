package postgres

// FindQuery is the statement Find runs, for query-plan tests.
var FindQuery = findQuery
