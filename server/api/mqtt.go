package api

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ParseMQTTBroker parses the URL of an MQTT broker, mqtt://host:port or
// mqtts://host:port, as serve's --mqtt-broker and the simulator's --mqtt
// take it, or says what is wrong with it.
func ParseMQTTBroker(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		return nil, fmt.Errorf("no scheme: add mqtt:// (mqtt://%s) or mqtts://", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.Unwrap(err)
	}
	if u.Scheme != "mqtt" && u.Scheme != "mqtts" || u.Hostname() == "" || u.Port() == "" {
		return nil, errors.New("want mqtt://host:port or mqtts://host:port")
	}
	return u, nil
}
