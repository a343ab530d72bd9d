package result

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Both spellings (the scenario files' kebab-case and the stack files' camelCase) set the same
// fields.
func TestStackParamsSpellings(t *testing.T) {
	want := StackParams{DownAfterMs: 2000, FailoverTimeoutMs: 9000, Quorum: 2, CheckInterval: Interval(500 * time.Millisecond),
		Persistence: "aof", MinReplicasToWrite: 1, MinReplicasMaxLag: 5, VRRPAdvertInt: 3, Extra: map[string]string{"k": "v"},
		RedisPort: 7000, SentinelPort: 27000, MasterName: "cache", HAProxySocket: "/run/h.sock", ProxyAdmin: "127.0.0.1:9000",
		Durability: "replicated", Guard: true}
	kebabWhere := "redis-port: 7000\nsentinel-port: 27000\nmaster-name: cache\nhaproxy-socket: /run/h.sock\nproxy-admin: 127.0.0.1:9000\n" +
		"durability: replicated\nguard: true\n"
	camelWhere := "redisPort: 7000\nsentinelPort: 27000\nmasterName: cache\nhaproxySocket: /run/h.sock\nproxyAdmin: 127.0.0.1:9000\n" +
		"durability: replicated\nguard: true\n"
	for name, doc := range map[string]string{
		"kebab": "down-after-ms: 2000\nfailover-timeout-ms: 9000\nquorum: 2\ncheck-interval-ms: 500\npersistence: aof\n" +
			"min-replicas-to-write: 1\nmin-replicas-max-lag: 5\nvrrp-advert-int: 3\nextra: {k: v}\n" + kebabWhere,
		"camel": "downAfterMs: 2000\nfailoverTimeoutMs: 9000\nquorum: 2\ncheckInterval: 500ms\npersistence: aof\n" +
			"minReplicasToWrite: 1\nminReplicasMaxLag: 5\nvrrpAdvertInt: 3\nextra: {k: v}\n" + camelWhere,
		"duration": "down-after-ms: 2000\nfailover-timeout-ms: 9000\nquorum: 2\ncheck-interval: 500ms\npersistence: aof\n" +
			"min-replicas-to-write: 1\nmin-replicas-max-lag: 5\nvrrp-advert-int: 3\nextra: {k: v}\n" + camelWhere,
	} {
		var got StackParams
		if err := yaml.Unmarshal([]byte(doc), &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, want %+v", name, got, want)
		}
	}
	for doc, msg := range map[string]string{
		"quorum: 2\nquorom: 3\n":                      "line 2: unknown field quorom",
		"downAfterMs: 1000\ndown-after-ms: 2000\n":    "line 2: down-after-ms sets the same parameter as downAfterMs",
		"check-interval-ms: 500\ncheckInterval: 1s\n": "line 2: checkInterval sets the same parameter as check-interval-ms",
		"quorum: two\n":                               "line 1: quorum",
		"- quorum\n":                                  "must be a mapping",
		"durability: sync\n":                          `line 1: durability: "sync" is not async or replicated`,
		"guard: maybe\n":                              "line 1: guard",
	} {
		var p StackParams
		if err := yaml.Unmarshal([]byte(doc), &p); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: err %v, want %q", doc, err, msg)
		}
	}
}

func TestStackParamsMerge(t *testing.T) {
	over := StackParams{DownAfterMs: 2000, Extra: map[string]string{"a": "over"}}
	under := StackParams{DownAfterMs: 5000, Quorum: 2, CheckInterval: Interval(time.Second), Persistence: "rdb", VRRPAdvertInt: 1,
		Extra: map[string]string{"a": "under", "b": "under"}}
	got := over.Merge(under)
	want := StackParams{DownAfterMs: 2000, Quorum: 2, CheckInterval: Interval(time.Second), Persistence: "rdb", VRRPAdvertInt: 1,
		Extra: map[string]string{"a": "over", "b": "under"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	// A variant's durability and guard reach the templates under a scenario that says nothing
	// of them, and a scenario's durability wins over the variant's.
	variant := StackParams{Durability: "replicated", Guard: true}
	if got := (StackParams{}).Merge(variant).Merge(under); got.Durability != "replicated" || !got.Guard {
		t.Fatalf("variant's durability and guard lost: %+v", got)
	}
	if got := (StackParams{Durability: "async"}).Merge(variant); got.Durability != "async" || !got.Guard {
		t.Fatalf("scenario's durability must win: %+v", got)
	}
	if got := (StackParams{}).Merge(under); got.Durability != "" || got.Guard {
		t.Fatalf("durability and guard must default off: %+v", got)
	}
}

// JSON keeps result.json's spelling: camelCase keys, the interval as Go prints it; lab state
// files written before held the interval in nanoseconds and still read.
func TestStackParamsJSON(t *testing.T) {
	b, err := json.Marshal(StackParams{DownAfterMs: 2000, CheckInterval: Interval(1500 * time.Millisecond)})
	if err != nil || string(b) != `{"downAfterMs":2000,"checkInterval":"1.5s"}` {
		t.Fatalf("%s %v", b, err)
	}
	var p StackParams
	if err := json.Unmarshal([]byte(`{"checkInterval":1000000000}`), &p); err != nil || p.CheckInterval != Interval(time.Second) {
		t.Fatalf("%+v %v", p, err)
	}
	if Interval(1500*time.Millisecond).String() != "1500ms" || Interval(2*time.Second).String() != "2s" {
		t.Fatal("the interval does not render in HAProxy's syntax")
	}
}
