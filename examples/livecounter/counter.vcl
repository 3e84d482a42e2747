vcl 4.1;
# Varnish between caddy-grip and the livecounter origin (run.sh starts it).
# Varnish caches GRIP answers like any others, Grip-* headers included, so
# a cached answer starts a client's stream without the origin.

import std;
import purge;

backend origin {
	.host = "127.0.0.1";
	.port = "8503";
	# The probe decides how stale an answer may be served (vcl_recv).
	.probe = {
		.url = "/healthz";
		.interval = 500ms;
		.timeout = 1s;
		.window = 3;
		.threshold = 2;
	}
}

# Who may purge: the origin's publisher, on this machine.
acl purgers {
	"127.0.0.1";
	"::1";
}

sub vcl_recv {
	if (req.method == "PURGE") {
		if (!client.ip ~ purgers) {
			return (synth(405, "Not allowed."));
		}
		return (hash);
	}
	# Ban by channel: drops every cached answer whose Grip-Channel names
	# the channel in the request's Grip-Channel header (one name, of A-Z,
	# a-z, 0-9, _ and -), whatever its URL.
	if (req.method == "BAN") {
		if (!client.ip ~ purgers) {
			return (synth(405, "Not allowed."));
		}
		if (req.http.Grip-Channel !~ "^[A-Za-z0-9_-]+$") {
			return (synth(400, "Grip-Channel: one channel name, of A-Z a-z 0-9 _ -"));
		}
		if (std.ban("obj.http.Grip-Channel ~ (^|,)[[:space:]]*" + req.http.Grip-Channel + "[[:space:]]*(;|,|$)")) {
			return (synth(200, "Banned"));
		}
		return (synth(400, std.ban_error()));
	}
	# Next-link fetches and re-requests carry Grip-Last and their answer
	# depends on it: never from the cache.
	if (req.http.Grip-Last) {
		return (pass);
	}
	if (req.url ~ "^/counters/") {
		# Caddy forwards the client's cookies; the counter does not read
		# them, and Varnish would not cache a request that has any.
		unset req.http.Cookie;
		# Two variants only (Vary: Accept): the stream and the text.
		if (req.http.Accept ~ "text/event-stream") {
			set req.http.Accept = "text/event-stream";
		} else {
			unset req.http.Accept;
		}
	}
	# While the origin is healthy an expired or purged answer is fetched
	# again (one fetch for all waiting clients); while it is down, answers
	# up to a day old are served.
	if (std.healthy(req.backend_hint)) {
		set req.grace = 0s;
	}
}

# One site: the URL is the key (Caddy passes the client's Host through,
# which the publisher's purge could not know).
sub vcl_hash {
	hash_data(req.url);
	return (lookup);
}

sub vcl_hit {
	if (req.method == "PURGE") {
		# Soft: the answers expire but are kept for grace, so that they can
		# still start streams if the origin goes down before the next fetch.
		purge.soft(0s);
		return (synth(200, "Purged"));
	}
}

sub vcl_miss {
	if (req.method == "PURGE") {
		purge.soft(0s);
		return (synth(200, "Purged"));
	}
}

sub vcl_backend_response {
	set beresp.grace = 24h;
}
