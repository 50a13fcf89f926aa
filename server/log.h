#ifndef CONTACTS_GATEWAY_SERVER_LOG_H_
#define CONTACTS_GATEWAY_SERVER_LOG_H_

#include <string_view>

namespace contacts::gateway {

enum class Severity { kDebug, kInfo, kWarning, kError };

// One line to stderr: "2026-11-27T09:00:00.123Z INFO message". Thread-safe. Never pass a secret.
void Log(Severity severity, std::string_view message);
void SetMinLogSeverity(Severity severity);

}  // namespace contacts::gateway

#endif  // CONTACTS_GATEWAY_SERVER_LOG_H_
