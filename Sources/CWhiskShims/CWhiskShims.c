#include "CWhiskShims.h"

CURLcode whisk_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

CURLMcode whisk_curl_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return curl_multi_setopt(multi, option, value);
}

CURLcode whisk_curl_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode whisk_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode whisk_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode whisk_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

CURLcode whisk_curl_setopt_data_callback(CURL *handle, CURLoption option, whisk_curl_data_callback callback) {
    return curl_easy_setopt(handle, option, callback);
}

CURLcode whisk_curl_setopt_xferinfo_callback(CURL *handle, whisk_curl_xferinfo_callback callback) {
    return curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, callback);
}

CURLcode whisk_curl_response_code(CURL *handle, long *code) {
    return curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, code);
}

CURLcode whisk_curl_request_size(CURL *handle, long *bytes) {
    return curl_easy_getinfo(handle, CURLINFO_REQUEST_SIZE, bytes);
}

CURLcode whisk_curl_msg_result(const CURLMsg *message) {
    return message->data.result;
}
