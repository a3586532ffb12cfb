// Package bounce receives and authenticates the mail that comes back to
// the rewritten envelope sender bounce+ID@ a return-path domain (VERP).
//
// verp.go: the ID carries the message id, the hour it was sent and an
// 80-bit HMAC-SHA256 under a secret shared by all instances, bound to the
// return-path domain, so ids need no database lookup and cannot be forged
// or copied to another domain.
package bounce
