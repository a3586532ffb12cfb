// Package bounce receives and authenticates the mail that comes back to
// the rewritten envelope sender bounce+ID@ a return-path domain (VERP).
//
// verp.go: the ID carries the message id, the hour it was sent, for a
// message with one recipient a hash of that recipient, and an 80-bit
// HMAC-SHA256 under a secret shared by all instances, bound to the
// return-path domain, so ids need no database lookup and cannot be forged
// or copied to another domain, and a bounce through a one-recipient id
// can only act on that recipient.
//
// parse.go classifies what comes back:
//
//   - RFC 3464 delivery status notifications (multipart/report,
//     report-type=delivery-status, RFC 6522): per recipient, Action failed
//     is hard (soft when its Status is 4.x.x), delayed is soft; delivered,
//     relayed and expanded are ignored;
//   - RFC 5965 feedback reports (report-type=feedback-report): a
//     complaint, the recipient from Original-Rcpt-To or else the enclosed
//     message's To;
//   - other bounces by a heuristic table of phrases in the subject or body,
//     first match wins: "mailbox full", "over quota", "quota exceeded"
//     (soft); "user unknown", "no such user", "does not exist",
//     "undelivered mail returned to sender", "delivery status notification
//     (failure)", "mail delivery failed", "undeliverable" (hard);
//     "delivery status notification (delay)" (soft). The first status
//     code in the text ("550 5.1.1", "4.2.2") is the Status, and a 4.x.x
//     code makes the bounce soft, a 5.x.x hard unless a quota phrase
//     matched; the first address in the body is the recipient.
//
// server.go is the SMTP receiver (go-smtp): no AUTH, STARTTLS when
// configured, RCPT only for bounce+ID@ served domains (550 5.1.1 else),
// ids checked after DATA so forgers learn nothing.
//
// Parse reads at most 4 MiB, 16 parts of 1 MiB each and 100 recipients.
package bounce
