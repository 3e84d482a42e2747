package instruct

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestSplitHeader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
		ok   bool
	}{
		{"empty value", "", nil, true},
		{"one", "apple", []string{"apple"}, true},
		{"commas", "apple, banana, cherry", []string{"apple", "banana", "cherry"}, true},
		{"trims each part", "  a ,\tb  ", []string{"a", "b"}, true},
		{"params stay with their entry", "a; prev-id=3, b; filter=x",
			[]string{"a; prev-id=3", "b; filter=x"}, true},
		// Pushpin's httpheaderstest vector.
		{"comma inside quotes", `apple; type="granny, smith", banana; type="\"yellow\""`,
			[]string{`apple; type="granny, smith"`, `banana; type="\"yellow\""`}, true},
		{"escaped quote does not close", `"a\"b,c", d`, []string{`"a\"b,c"`, "d"}, true},
		{"escaped backslash before quote closes", `"a\\", d`, []string{`"a\\"`, "d"}, true},
		{"backslash outside quotes is literal", `a\,b`, []string{`a\`, "b"}, true},
		{"empty middle entry kept", "a,,b", []string{"a", "", "b"}, true},
		{"empty first entry kept", ",a", []string{"", "a"}, true},
		{"lone comma is one empty entry", ",", []string{""}, true},
		{"trailing comma dropped", "a,", []string{"a"}, true},
		{"trailing comma and space dropped", "a, ", []string{"a"}, true},
		// Pushpin's vectors: an unterminated quote or escape keeps the rest whole.
		{"unterminated quote", `"apple`, []string{`"apple`}, false},
		{"dangling escape in quotes", `"apple\`, []string{`"apple\`}, false},
		{"unterminated quote swallows later commas",
			`apple; type=gala, banana; type="yellow, cherry`,
			[]string{"apple; type=gala", `banana; type="yellow, cherry`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := splitHeader(tt.in)
			if !reflect.DeepEqual(got, tt.want) || ok != tt.ok {
				t.Errorf("splitHeader(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestParseHeaderEntry(t *testing.T) {
	type p = headerParam
	tests := []struct {
		name         string
		in           string
		firstIsParam bool
		first        string
		params       []headerParam
	}{
		{"first only", "apple", false, "apple", nil},
		{"first trimmed", "  apple  ", false, "apple", nil},
		{"params", "apple; prev-id=item1; filter=f1", false, "apple",
			[]p{{"prev-id", "item1"}, {"filter", "f1"}}},
		{"repeated param kept in order", "c; filter=f1; filter=f2", false, "c",
			[]p{{"filter", "f1"}, {"filter", "f2"}}},
		{"unquoted value trimmed", "x; a =  v  ; b", false, "x", []p{{"a", "v"}, {"b", ""}}},
		{"empty value", "x; a=", false, "x", []p{{"a", ""}}},
		{"quoted value", `x; a="b c"`, false, "x", []p{{"a", "b c"}}},
		{"quoted value keeps ; and ,", `x; a="1;2,3"; b=4`, false, "x", []p{{"a", "1;2,3"}, {"b", "4"}}},
		{"escapes in quoted value", `x; a="b\"c\\d\e"`, false, "x", []p{{"a", `b"c\de`}}},
		{"junk after closing quote ignored", `x; a="v"junk; b=c`, false, "x", []p{{"a", "v"}, {"b", "c"}}},
		{"space before opening quote", `x; a= "v;w"`, false, "x", []p{{"a", "v;w"}}},
		{"value may contain =", "x; a=b=c", false, "x", []p{{"a", "b=c"}}},
		{"link form", "</x?a=1>; rel=next; timeout=3", false, "</x?a=1>",
			[]p{{"rel", "next"}, {"timeout", "3"}}},
		{"empty first", " ; a=b", false, "", []p{{"a", "b"}}},
		{"first is not unquoted", `"a;b"; c=d`, false, `"a`, []p{{`b"`, ""}, {"c", "d"}}},
		{"all params", `user="alice"; x=y`, true, "", []p{{"user", "alice"}, {"x", "y"}}},
		{"all params, bare key", "flag", true, "", []p{{"flag", ""}}},
		{"all params, empty", "", true, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := parseHeaderEntry(tt.in, tt.firstIsParam)
			if err != nil {
				t.Fatalf("parseHeaderEntry(%q): %v", tt.in, err)
			}
			if e.first != tt.first || !reflect.DeepEqual(e.params, tt.params) {
				t.Errorf("parseHeaderEntry(%q) = %q %q; want %q %q", tt.in, e.first, e.params, tt.first, tt.params)
			}
		})
	}
}

func TestParseHeaderEntryRejectsBadQuotes(t *testing.T) {
	tests := []struct {
		in           string
		firstIsParam bool
		want         error
	}{
		{`x; a="v`, false, errUnterminatedQuote},
		{`x; a="v\`, false, errDanglingEscape},
		{`x; a="v\"`, false, errUnterminatedQuote},
		{`a="v`, true, errUnterminatedQuote},
	}
	for _, tt := range tests {
		if _, err := parseHeaderEntry(tt.in, tt.firstIsParam); !errors.Is(err, tt.want) {
			t.Errorf("parseHeaderEntry(%q) error = %v; want %v", tt.in, err, tt.want)
		}
	}
}

func TestHeaderEntryParamIsCaseInsensitiveAndFirstWins(t *testing.T) {
	e, err := parseHeaderEntry("x; Prev-ID=3; prev-id=4", false)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := e.param("prev-id"); !ok || v != "3" {
		t.Errorf(`param("prev-id") = %q, %v; want "3", true`, v, ok)
	}
	if _, ok := e.param("filter"); ok {
		t.Error(`param("filter") found a parameter that is absent`)
	}
}

func FuzzSplitHeader(f *testing.F) {
	for _, s := range []string{"", "a, b", `a; x="1,2", b`, `"a`, `"a\`, "a,,b", `x; a="b\"c"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parts, ok := splitHeader(s)
		for i, p := range parts {
			if p != trimHeaderSpace(p) {
				t.Fatalf("part %d %q is not trimmed", i, p)
			}
			if !strings.Contains(s, p) {
				t.Fatalf("part %d %q is not from %q", i, p, s)
			}
			_, _ = parseHeaderEntry(p, false) // must not panic
			_, _ = parseHeaderEntry(p, true)
		}
		if !ok && len(parts) == 0 {
			t.Fatalf("unterminated %q returned no remainder", s)
		}
	})
}
