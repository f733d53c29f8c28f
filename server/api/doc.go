// Package api is the wire contract of smartmeters: the routes, the JSON
// bodies of the reporting endpoints and of registration, the problem types
// every error carries, and the columns of a meter's CSV export. The server
// decodes and answers with these types; the simulator, bench and verify
// build and read requests with them, so that a client and the server
// cannot drift apart.
//
// The package holds no behaviour beyond encoding; it imports nothing of
// the server.
package api
