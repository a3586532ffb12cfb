package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// handleSendergate serves the webhook's URL.
func handleSendergate(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	secret := os.Getenv("SENDERGATE_WEBHOOK_SECRET")
	if err != nil || !verifySignature(secret, r.Header.Get("Sendergate-Signature"), body, time.Now(), 5*time.Minute) {
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var event struct {
		ID   string          `json:"id"`
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &event); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	// If event.ID was seen before, stop here; else queue the work.
	w.WriteHeader(http.StatusNoContent)
}

// verifySignature reports whether header, the Sendergate-Signature value,
// signs body (the raw request body) with secret and is at most tolerance
// old at now.
func verifySignature(secret, header string, body []byte, now time.Time, tolerance time.Duration) bool {
	var timestamp string
	var signatures []string
	for _, part := range strings.Split(header, ",") {
		key, value, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch key {
		case "t":
			timestamp = value
		case "v1":
			signatures = append(signatures, value)
		}
	}
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil || now.Sub(time.Unix(sec, 0)).Abs() > tolerance {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp + "."))
	mac.Write(body)
	expected := mac.Sum(nil)
	for _, s := range signatures {
		if got, err := hex.DecodeString(s); err == nil && hmac.Equal(got, expected) {
			return true
		}
	}
	return false
}
