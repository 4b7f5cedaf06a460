// The one header through which Gatehouse sees libxml2, libxmlsec1 and OpenSSL.
//
// SwiftPM drops the -D flags of xmlsec1-openssl.pc, so they are repeated here, before any xmlsec
// include. Without XMLSEC_NO_SIZE_T the structs silently get another layout (see the layout test).
#ifndef GATEHOUSE_XMLSEC_H
#define GATEHOUSE_XMLSEC_H

#define XMLSEC_NO_SIZE_T 1
#define XMLSEC_CRYPTO_OPENSSL 1
#define XMLSEC_NO_CRYPTO_DYNAMIC_LOADING 1
#define XMLSEC_OPENSSL3_ENGINES 1
#define XMLSEC_NO_GOST 1
#define XMLSEC_NO_GOST2012 1
#define __XMLSEC_FUNCTION__ __func__

// libxml2 is built with ICU, and <libxml/encoding.h> includes ICU's <unicode/ucnv.h>, whose types
// clash with the copy Foundation sees ("'UErrorCode' has different definitions"). libxml2 needs only
// two names from it, as opaque types: keep the header out and declare them here.
#include <stdint.h>
#ifndef UCNV_H
#define UCNV_H
typedef struct UConverter UConverter;
typedef uint16_t UChar;
#endif

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/valid.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlsave.h>

#include <xmlsec/xmlsec.h>
#include <xmlsec/errors.h>
#include <xmlsec/io.h>
#include <xmlsec/keys.h>
#include <xmlsec/keysdata.h>
#include <xmlsec/keysmngr.h>
#include <xmlsec/transforms.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlenc.h>
#include <xmlsec/templates.h>
#include <xmlsec/crypto.h>
#include <xmlsec/openssl/app.h>
#include <xmlsec/openssl/crypto.h>
#include <xmlsec/openssl/evp.h>
#include <xmlsec/openssl/x509.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/asn1.h>

#include <zlib.h>

// Macros and globals Swift cannot use directly.

/// `xmlFree` is a mutable global function pointer, which Swift 6 refuses to read.
static inline void gh_xml_free(void *p) { xmlFree(p); }

/// The struct sizes this header gives, checked by a test against what the library was built with.
static inline int gh_dsig_ctx_size(void) { return (int)sizeof(xmlSecDSigCtx); }
static inline int gh_enc_ctx_size(void) { return (int)sizeof(xmlSecEncCtx); }

/// zlib's init macros pass the library version and struct size; Swift cannot expand them.
static inline int gh_deflate_init_raw(z_stream *s) { return deflateInit2(s, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY); }
static inline int gh_inflate_init_raw(z_stream *s) { return inflateInit2(s, -15); }

/// `xmlSecCheckVersion()` is a macro over the compile-time version.
static inline int gh_xmlsec_check_version(void) { return xmlSecCheckVersion(); }

/// The library's view of `XMLSEC_NO_SIZE_T`: the size of xmlSecSize it was compiled with.
static inline int gh_xmlsec_size_bytes(void) { return (int)sizeof(xmlSecSize); }

#endif
