package schema

import "strconv"

// Field paths name one value in the tailnet document, for diagnostics and
// for Source.Pos. The canonical form, built only through PathKey and
// PathIndex so every package spells a path identically, is:
//
//   - an object key made only of [A-Za-z0-9_] (and not empty) follows a dot,
//     or starts the path at the top level: `acls`, `tailnet.ipv4`;
//   - any other key is written in brackets as a Go/JSON double-quoted string:
//     `groups["group:eng"]`, `users["alice@example.com"].role`; at the top
//     level the path starts with the bracket: `["odd key"]`;
//   - an array element is its 0-based index in brackets: `acls[3].dst[0]`.

// PathKey returns the path of the member key of the object at parent.
// parent is "" for the top level of the document.
func PathKey(parent, key string) string {
	if isPlainKey(key) {
		if parent == "" {
			return key
		}
		return parent + "." + key
	}
	return parent + "[" + strconv.Quote(key) + "]"
}

// PathIndex returns the path of element i of the array at parent.
func PathIndex(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// isPlainKey reports whether key may be written after a dot in a path.
func isPlainKey(key string) bool {
	if key == "" {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}
