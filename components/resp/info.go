package resp

import "strings"

// Info is the parsed text of an INFO reply: lower-case section name to key to
// value. Keys outside any "# Section" header land in section "".
type Info map[string]map[string]string

// ParseInfo parses INFO text. It never fails: lines that are not "key:value"
// are skipped, because INFO is meant for humans and grows new lines over time.
func ParseInfo(text string) Info {
	info := Info{}
	section := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			section = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(line, "#")))
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok || key == "" {
			continue
		}
		if info[section] == nil {
			info[section] = map[string]string{}
		}
		info[section][key] = value
	}
	return info
}

// Get returns key from whichever section holds it, or "". Keys are unique
// across INFO sections in every redis version, so the section rarely matters.
func (i Info) Get(key string) string {
	for _, s := range i {
		if v, ok := s[key]; ok {
			return v
		}
	}
	return ""
}

// Section returns one section's keys (nil when absent); name is case-insensitive.
func (i Info) Section(name string) map[string]string {
	return i[strings.ToLower(name)]
}

// ParseFields splits the comma-separated key=value lists INFO uses for
// replicas ("slave0:ip=10.0.0.2,port=6379,state=online,offset=42,lag=0") and
// for sentinel masters ("master0:name=mymaster,status=ok,...").
func ParseFields(s string) map[string]string {
	m := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || k == "" {
			continue
		}
		m[k] = v
	}
	return m
}
