package sqlite

// MigrateTo builds a file of an older schema version, to test the migrations from it.
var MigrateTo = migrate

// FindQuery is the statement Find runs, for query-plan tests.
var FindQuery = findQuery

// QueryCols are the query columns an INSERT names, in the order columnsSQL computes them.
var QueryCols = queryCols
