package formats

import (
	"encoding/json"
	"strings"
	"testing"
)

// RFC 6902 Appendix A, with results written as Pushpin writes them
// (compact, keys sorted).
func TestApplyJSONPatchRFC6902Examples(t *testing.T) {
	cases := []struct {
		name, doc, patch, want string // want "" means an error
	}{
		{"A.1 add object member", `{"foo":"bar"}`, `[{"op":"add","path":"/baz","value":"qux"}]`,
			`{"baz":"qux","foo":"bar"}`},
		{"A.2 add array element", `{"foo":["bar","baz"]}`, `[{"op":"add","path":"/foo/1","value":"qux"}]`,
			`{"foo":["bar","qux","baz"]}`},
		{"A.3 remove object member", `{"baz":"qux","foo":"bar"}`, `[{"op":"remove","path":"/baz"}]`,
			`{"foo":"bar"}`},
		{"A.4 remove array element", `{"foo":["bar","qux","baz"]}`, `[{"op":"remove","path":"/foo/1"}]`,
			`{"foo":["bar","baz"]}`},
		{"A.5 replace", `{"baz":"qux","foo":"bar"}`, `[{"op":"replace","path":"/baz","value":"boo"}]`,
			`{"baz":"boo","foo":"bar"}`},
		{"A.6 move", `{"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}`,
			`[{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]`,
			`{"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}`},
		{"A.7 move array element", `{"foo":["all","grass","cows","eat"]}`,
			`[{"op":"move","from":"/foo/1","path":"/foo/3"}]`, `{"foo":["all","cows","eat","grass"]}`},
		{"A.8 test success", `{"baz":"qux","foo":["a",2,"c"]}`,
			`[{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]`,
			`{"baz":"qux","foo":["a",2,"c"]}`},
		{"A.9 test error", `{"baz":"qux"}`, `[{"op":"test","path":"/baz","value":"bar"}]`, ""},
		{"A.10 add nested object", `{"foo":"bar"}`, `[{"op":"add","path":"/child","value":{"grandchild":{}}}]`,
			`{"child":{"grandchild":{}},"foo":"bar"}`},
		{"A.11 ignore unknown members", `{"foo":"bar"}`, `[{"op":"add","path":"/baz","value":"qux","xyz":123}]`,
			`{"baz":"qux","foo":"bar"}`},
		{"A.12 add to nonexistent target", `{"foo":"bar"}`, `[{"op":"add","path":"/baz/bat","value":"qux"}]`, ""},
		{"A.13 duplicate op member", `{"foo":"bar"}`, `[{"op":"add","path":"/baz","value":"qux","op":"remove"}]`, ""},
		{"A.14 escape ordering", `{"/":9,"~1":10}`, `[{"op":"test","path":"/~01","value":10}]`, `{"/":9,"~1":10}`},
		{"A.15 string is not number", `{"/":9,"~1":10}`, `[{"op":"test","path":"/~01","value":"10"}]`, ""},
		{"A.16 add array value", `{"foo":["bar"]}`, `[{"op":"add","path":"/foo/-","value":["abc","def"]}]`,
			`{"foo":["bar",["abc","def"]]}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkPatch(t, tc.doc, tc.patch, tc.want)
		})
	}
}

func checkPatch(t *testing.T, doc, patch, want string) {
	t.Helper()
	got, err := ApplyJSONPatch([]byte(doc), json.RawMessage(patch))
	if want == "" {
		if err == nil {
			t.Fatalf("got %s, want an error", got)
		}
		return
	}
	if err != nil || string(got) != want {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
}

// The sequence of Pushpin's src/handler/jsonpatchtest.cpp, as one patch.
func TestApplyJSONPatchPushpinSequence(t *testing.T) {
	patch := `[{"op":"test","path":"/foo","value":"bar"},
		{"op":"add","path":"/fruit","value":["apple"]},
		{"op":"copy","from":"/foo","path":"/fruit/-"},
		{"op":"replace","path":"/fruit/1","value":{"cherries":true,"grapes":5}},
		{"op":"remove","path":"/fruit/1/cherries"},
		{"op":"move","from":"/fruit/0","path":"/foo"}]`
	checkPatch(t, `{"foo":"bar"}`, patch, `{"foo":"apple","fruit":[{"grapes":5}]}`)
}

func TestApplyJSONPatchWritesLikeQt(t *testing.T) {
	cases := []struct{ name, doc, patch, want string }{
		{"keeps trailing newline", "{\"a\": 1}\n", `[]`, "{\"a\":1}\n"},
		{"keeps trailing CRLF", "[1, 2]\r\n", `[]`, "[1,2]\r\n"},
		{"no newline added", "{}", `[]`, "{}"},
		{"keys sorted by UTF-16 units", `{"b":1,"\uffff":2,"😀":3,"a":4,"B":5}`, `[]`,
			`{"B":5,"a":4,"b":1,"😀":3,"` + "\uffff" + `":2}`},
		{"whole numbers as integers", `[1.0, 1e2, -0, 1.5e10, -7, 9223372036854775807]`, `[]`,
			`[1,100,0,15000000000,-7,9223372036854775807]`},
		{"fractions in shortest form", `[1.5, 0.5, 0.1, -2.25, 0.001, 100000.5]`, `[]`,
			`[1.5,0.5,0.1,-2.25,0.001,100000.5]`},
		{"exponent form when shorter", `[0.0001, 1e-5, 1e20, 1.5e300, 12345678901234567890]`, `[]`,
			`[1e-04,1e-05,1e+20,1.5e+300,12345678901234567000]`},
		{"string escapes", `["a\"b\\c/d\u0001\u001f\u007f\b\f\n\r\té<>&\u2028"]`, `[]`,
			"[\"a\\\"b\\\\c/d\\u0001\\u001f\x7f\\b\\f\\n\\r\\té<>&\u2028\"]"},
		{"literals", `[true,false,null,{}]`, `[]`, `[true,false,null,{}]`},
		{"patch values written the same way", `{}`, `[{"op":"add","path":"/x","value":{"z":1.0,"y":[0.0001]}}]`,
			`{"x":{"y":[1e-04],"z":1}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkPatch(t, tc.doc, tc.patch, tc.want)
		})
	}
}

func TestApplyJSONPatchPointers(t *testing.T) {
	cases := []struct{ name, doc, patch, want string }{
		{"slash is the empty key", `{"":1}`, `[{"op":"replace","path":"/","value":2}]`, `{"":2}`},
		{"tilde escapes", `{"a/b":1,"m~n":2}`,
			`[{"op":"copy","from":"/a~1b","path":"/m~0n"}]`, `{"a/b":1,"m~n":1}`},
		{"replace whole document", `{"a":1}`, `[{"op":"replace","path":"","value":[1]}]`, `[1]`},
		{"add at array end", `[1,2]`, `[{"op":"add","path":"/2","value":3}]`, `[1,2,3]`},
		{"add past array end", `[1,2]`, `[{"op":"add","path":"/3","value":3}]`, ""},
		{"leading zero index", `[1,2]`, `[{"op":"replace","path":"/01","value":3}]`, ""},
		{"negative index", `[1,2]`, `[{"op":"remove","path":"/-1"}]`, ""},
		{"dash names no element", `[1]`, `[{"op":"replace","path":"/-","value":3}]`, ""},
		{"huge index", `[1]`, `[{"op":"remove","path":"/99999999999999999999"}]`, ""},
		{"descend into a scalar", `{"a":1}`, `[{"op":"add","path":"/a/b","value":3}]`, ""},
		{"remove missing member", `{"a":1}`, `[{"op":"remove","path":"/b"}]`, ""},
		{"remove whole document", `{"a":1}`, `[{"op":"remove","path":""}]`, ""},
		{"replace missing member", `{"a":1}`, `[{"op":"replace","path":"/b","value":1}]`, ""},
		{"test missing member", `{"a":1}`, `[{"op":"test","path":"/b","value":null}]`, ""},
		{"test deep equality", `{"a":{"x":[1,{"y":null}],"z":1.0}}`,
			`[{"op":"test","path":"/a","value":{"z":1,"x":[1.0,{"y":null}]}}]`, `{"a":{"x":[1,{"y":null}],"z":1}}`},
		{"test numbers exactly", `{"a":1.5}`, `[{"op":"test","path":"/a","value":1.7}]`, ""},
		{"move to same place", `{"a":1}`, `[{"op":"move","from":"/a","path":"/a"}]`, `{"a":1}`},
		{"move missing", `{"a":1}`, `[{"op":"move","from":"/b","path":"/c"}]`, ""},
		{"copy is independent", `{"a":{"b":1}}`,
			`[{"op":"copy","from":"/a","path":"/c"},{"op":"replace","path":"/c/b","value":2}]`,
			`{"a":{"b":1},"c":{"b":2}}`},
		{"result must be a container", `{"a":1}`, `[{"op":"replace","path":"","value":"s"}]`, ""},
		{"held body must be a container", `"s"`, `[]`, ""},
		{"held body must be JSON", `{"a":`, `[]`, ""},
		{"held body without trailing data", `{} {}`, `[]`, ""},
		{"held body number out of range", `[1e400]`, `[]`, ""},
		{"held body invalid UTF-8", "[\"\xff\"]", `[]`, ""},
		{"failure leaves no partial result", `{"a":1}`,
			`[{"op":"add","path":"/b","value":2},{"op":"remove","path":"/zz"}]`, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkPatch(t, tc.doc, tc.patch, tc.want)
		})
	}
}

func TestApplyJSONPatchErrorNamesOp(t *testing.T) {
	_, err := ApplyJSONPatch([]byte(`{"a":{}}`), json.RawMessage(
		`[{"op":"test","path":"/a","value":{}},{"op":"add","path":"/x","value":1},{"op":"replace","path":"/a/b","value":1}]`))
	want := "body-patch op 2 (replace): path /a/b does not exist"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
}

func TestValidateJSONPatchRejectsMalformed(t *testing.T) {
	cases := []struct{ name, patch, want string }{
		{"not JSON", `[`, "body-patch is not valid JSON"},
		{"object", `{"op":"add"}`, "body-patch is not an array"},
		{"element not object", `[{"op":"add","path":"/a","value":1},"x"]`, "body-patch op 1 is not an object"},
		{"missing op", `[{"path":"/a"}]`, "body-patch op 0: missing string 'op'"},
		{"unknown op", `[{"op":"frob","path":"/a"}]`, `body-patch op 0: unknown op "frob"`},
		{"missing path", `[{"op":"remove"}]`, "body-patch op 0 (remove): missing string 'path'"},
		{"path not string", `[{"op":"remove","path":1}]`, "body-patch op 0 (remove): missing string 'path'"},
		{"path not pointer", `[{"op":"remove","path":"a"}]`, `body-patch op 0 (remove): 'path' "a" is not a JSON pointer`},
		{"bad escape", `[{"op":"remove","path":"/a~2"}]`, `body-patch op 0 (remove): 'path' "/a~2" is not a JSON pointer`},
		{"add without value", `[{"op":"add","path":"/a"}]`, "body-patch op 0 (add): missing 'value'"},
		{"replace without value", `[{"op":"replace","path":"/a"}]`, "body-patch op 0 (replace): missing 'value'"},
		{"test without value", `[{"op":"test","path":"/a"}]`, "body-patch op 0 (test): missing 'value'"},
		{"move without from", `[{"op":"move","path":"/a"}]`, "body-patch op 0 (move): missing string 'from'"},
		{"copy bad from", `[{"op":"copy","path":"/a","from":"x"}]`, `body-patch op 0 (copy): 'from' "x" is not a JSON pointer`},
		{"move into child", `[{"op":"move","from":"/a","path":"/a/b"}]`, "body-patch op 0 (move): cannot move /a into its own child /a/b"},
		{"number out of range", `[{"op":"add","path":"/a","value":-1e999}]`, "body-patch is not valid JSON: number -1e999 is out of range"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateJSONPatch(json.RawMessage(tc.patch))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("error = %v, want prefix %q", err, tc.want)
			}
		})
	}
	for _, ok := range []string{`[]`, `[{"op":"add","path":"","value":null}]`,
		`[{"op":"move","from":"/a","path":"/ab"},{"op":"copy","from":"/a","path":"/a/b"}]`} {
		if err := ValidateJSONPatch(json.RawMessage(ok)); err != nil {
			t.Errorf("ValidateJSONPatch(%s) = %v, want nil", ok, err)
		}
	}
}

func FuzzApplyJSONPatch(f *testing.F) {
	f.Add([]byte(`{"foo":["bar",1.5,{"a":null}]}`+"\n"), []byte(`[{"op":"add","path":"/foo/1","value":"x"}]`))
	f.Add([]byte(`[1,[2]]`), []byte(`[{"op":"move","from":"/1/0","path":"/0"},{"op":"copy","from":"","path":"/-"}]`))
	f.Add([]byte(`{"a":{"b":1}}`), []byte(`[{"op":"remove","path":"/a/b"},{"op":"test","path":"/a","value":{}}]`))
	f.Fuzz(func(t *testing.T, doc, patch []byte) {
		out, err := ApplyJSONPatch(doc, patch)
		if err != nil {
			return
		}
		var v any
		if json.Unmarshal(out, &v) != nil {
			t.Fatalf("output %q is not JSON", out)
		}
		// Writing is stable: the output re-written is itself.
		if again, err := ApplyJSONPatch(out, json.RawMessage(`[]`)); err != nil || string(again) != string(out) {
			t.Fatalf("rewriting %q gave %q, %v", out, again, err)
		}
	})
}
