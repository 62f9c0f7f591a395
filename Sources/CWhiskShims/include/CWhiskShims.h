#ifndef C_WHISK_SHIMS_H
#define C_WHISK_SHIMS_H

#include <curl/curl.h>

// Typed wrappers for libcurl's variadic calls, which Swift cannot call directly.

typedef size_t (*whisk_curl_data_callback)(char *buffer, size_t size, size_t count, void *userdata);
typedef int (*whisk_curl_xferinfo_callback)(void *userdata, curl_off_t dltotal, curl_off_t dlnow,
                                            curl_off_t ultotal, curl_off_t ulnow);

CURLcode whisk_curl_setopt_long(CURL *handle, CURLoption option, long value);
CURLMcode whisk_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value);
CURLcode whisk_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value);
CURLcode whisk_curl_setopt_string(CURL *handle, CURLoption option, const char *value);
CURLcode whisk_curl_setopt_pointer(CURL *handle, CURLoption option, void *value);
CURLcode whisk_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value);
CURLcode whisk_curl_setopt_data_callback(CURL *handle, CURLoption option, whisk_curl_data_callback callback);
CURLcode whisk_curl_setopt_xferinfo_callback(CURL *handle, whisk_curl_xferinfo_callback callback);
CURLcode whisk_curl_response_code(CURL *handle, long *code);
// Bytes of the request sent so far: 0 when none reached a connection.
CURLcode whisk_curl_request_size(CURL *handle, long *bytes);
// The result of a finished transfer (a field of a union in CURLMsg).
CURLcode whisk_curl_msg_result(const CURLMsg *message);

#endif
