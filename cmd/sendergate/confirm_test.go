package main

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// confirmLink does what a person does with the link of a confirmation
// email: open it, then press the page's Confirm button, which a browser
// submits as a same-origin form POST. It returns the status of the page
// that says the outcome (the opening page's own status when it offers no
// button).
func confirmLink(t *testing.T, link string) int {
	t.Helper()
	resp, err := http.Get(link)
	if err != nil {
		t.Fatalf("open %s: %v", link, err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode
	}
	action, values := pageForm(t, page)
	base, _ := url.Parse(link)
	target, err := base.Parse(action)
	if err != nil {
		t.Fatalf("form action %q: %v", action, err)
	}
	req, _ := http.NewRequest("POST", target.String(), strings.NewReader(values.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base.Scheme+"://"+base.Host)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("submit the confirmation form: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// pageForm returns the action and the input values of the page's POST
// form that has a Confirm button; it fails the test without one.
func pageForm(t *testing.T, page []byte) (string, url.Values) {
	t.Helper()
	doc, err := html.Parse(bytes.NewReader(page))
	if err != nil {
		t.Fatalf("confirmation page: %v", err)
	}
	get := func(n *html.Node, key string) string {
		for _, a := range n.Attr {
			if a.Key == key {
				return a.Val
			}
		}
		return ""
	}
	var find func(n *html.Node) *html.Node
	find = func(n *html.Node) *html.Node {
		if n.Type == html.ElementNode && n.Data == "form" && strings.EqualFold(get(n, "method"), "post") {
			return n
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if f := find(c); f != nil {
				return f
			}
		}
		return nil
	}
	form := find(doc)
	if form == nil {
		t.Fatalf("no POST form on the confirmation page:\n%s", page)
	}
	values, button := url.Values{}, false
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "input" && get(n, "name") != "" {
			values.Add(get(n, "name"), get(n, "value"))
		}
		if n.Type == html.ElementNode && n.Data == "button" && n.FirstChild != nil && strings.TrimSpace(n.FirstChild.Data) == "Confirm" {
			button = true
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(form)
	if !button {
		t.Fatalf("the confirmation form has no Confirm button:\n%s", page)
	}
	return get(form, "action"), values
}
