// SEMPRE_EXPORT marks the public API of sempre::monitor. The library is
// compiled with hidden symbol visibility, so a shared libsempre-monitor exports
// what carries this mark and nothing else of sempre. Marked classes export
// their members, vtable and typeinfo.
#pragma once

#if defined(__GNUC__)
#define SEMPRE_EXPORT __attribute__((visibility("default")))
#else
#define SEMPRE_EXPORT
#endif
