// Package connstring edits PostgreSQL connection strings in both of
// libpq's forms (URLs and keyword=value lists) without a connection:
// removing or setting the password, and redacting it for output.
package connstring
