// The benchmark entity, shared by the `bench_generator` source plugin and bench_pipe's baseline
// (so both send exactly the same JSON text): entity i as ~300 bytes of JSON with a nested
// object, a list, integers, a float, a boolean and typed strings (a datetime, a namespaced id).
// Hand-rolled appends (no snprintf): the generator must cost little next to the pipe it feeds.
#pragma once

#include <string>

namespace sluice::bench {

inline void append_uint(std::string& out, unsigned long v, int min_digits = 1) {
    char buf[24];
    int n = 0;
    do {
        buf[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < min_digits) buf[n++] = '0';
    while (n) out.push_back(buf[--n]);
}

// `_id` of entity i.
inline void append_entity_id(std::string& out, unsigned long i) {
    out += "person-";
    append_uint(out, i);
}

// Entity i (deterministic). `revision` > 0 changes the content of every entity (a "note").
inline void append_entity(std::string& out, unsigned long i, unsigned long revision = 0) {
    out += "{\"_id\":\"";
    append_entity_id(out, i);
    out += "\",\"name\":\"Person Number ";
    append_uint(out, i);
    out += "\",\"email\":\"person.";
    append_uint(out, i);
    out += "@example.com\",\"age\":";
    append_uint(out, i % 90);
    out += (i % 3) ? ",\"active\":true" : ",\"active\":false";
    out += ",\"score\":";
    append_uint(out, i % 1000);
    out.push_back('.');
    append_uint(out, i % 100, 2);
    out += ",\"born\":\"~t19";
    append_uint(out, 10 + i % 90, 2);
    out.push_back('-');
    append_uint(out, 1 + i % 12, 2);
    out.push_back('-');
    append_uint(out, 1 + i % 28, 2);
    out += "T00:00:00Z\",\"address\":{\"street\":\"";
    append_uint(out, i % 997);
    out += " Long Street Name\",\"city\":\"City ";
    append_uint(out, i % 500);
    out += "\",\"zip\":\"";
    append_uint(out, i % 100000, 5);
    out += "\",\"country\":\"NO\"},\"tags\":[\"tag";
    append_uint(out, i % 10);
    out += "\",\"group";
    append_uint(out, i % 7);
    out += "\"],\"org\":\"~:org:";
    append_uint(out, i % 1000);
    out += "\",\"manager\":\"~:person:";
    append_uint(out, i / 10);
    out += "\",\"note\":\"lorem ipsum";
    if (revision) {
        out += " r";
        append_uint(out, revision);
    }
    out += "\"}";
}

}  // namespace sluice::bench
