package proto

// Standard error URIs (WAMP §Predefined URIs, Basic and Advanced Profile).
// They are data, not Go errors.
const (
	URIInvalidURI                 = "wamp.error.invalid_uri"
	URINoSuchProcedure            = "wamp.error.no_such_procedure"
	URIProcedureAlreadyExists     = "wamp.error.procedure_already_exists"
	URINoSuchRegistration         = "wamp.error.no_such_registration"
	URINoSuchSubscription         = "wamp.error.no_such_subscription"
	URIInvalidArgument            = "wamp.error.invalid_argument"
	URICanceled                   = "wamp.error.canceled"
	URIPayloadSizeExceeded        = "wamp.error.payload_size_exceeded"
	URIProtocolViolation          = "wamp.error.protocol_violation"
	URINotAuthorized              = "wamp.error.not_authorized"
	URIAuthorizationFailed        = "wamp.error.authorization_failed"
	URINoSuchRealm                = "wamp.error.no_such_realm"
	URINoSuchRole                 = "wamp.error.no_such_role"
	URINoSuchSession              = "wamp.error.no_such_session"
	URINoMatchingAuthMethod       = "wamp.error.no_matching_auth_method"
	URINoSuchPrincipal            = "wamp.error.no_such_principal"
	URIAuthenticationDenied       = "wamp.error.authentication_denied"
	URIAuthenticationFailed       = "wamp.error.authentication_failed"
	URIAuthenticationRequired     = "wamp.error.authentication_required"
	URIAuthorizationDenied        = "wamp.error.authorization_denied"
	URIAuthorizationRequired      = "wamp.error.authorization_required"
	URITimeout                    = "wamp.error.timeout"
	URIOptionNotAllowed           = "wamp.error.option_not_allowed"
	URIOptionDisallowedDiscloseMe = "wamp.error.option_disallowed.disclose_me"
	URINetworkFailure             = "wamp.error.network_failure"
	URIUnavailable                = "wamp.error.unavailable"
	URINoAvailableCallee          = "wamp.error.no_available_callee"
	URIFeatureNotSupported        = "wamp.error.feature_not_supported"
	URISystemShutdown             = "wamp.error.system_shutdown"
)

// URIProcedureExistsInvocationPolicyConflict refuses a REGISTER whose
// invocation policy differs from that of the shared registration the
// procedure has (Crossbar.io, Bondy and nexus send it; Autobahn|Python and
// Autobahn|JS name it ApplicationError.PROCEDURE_EXISTS_INVOCATION_POLICY_CONFLICT).
// A REGISTER against a single registration is refused
// URIProcedureAlreadyExists, whatever its policy.
const URIProcedureExistsInvocationPolicyConflict = "wamp.error.procedure_exists_with_different_invocation_policy"

// Close reasons (ABORT and GOODBYE).
const (
	CloseSystemShutdown = "wamp.close.system_shutdown"
	CloseCloseRealm     = "wamp.close.close_realm"
	CloseGoodbyeAndOut  = "wamp.close.goodbye_and_out"
	CloseNormal         = "wamp.close.normal"
	CloseKilled         = "wamp.close.killed"
)

// Role names (HELLO/WELCOME Details.roles).
const (
	RoleCaller     = "caller"
	RoleCallee     = "callee"
	RolePublisher  = "publisher"
	RoleSubscriber = "subscriber"
	RoleDealer     = "dealer"
	RoleBroker     = "broker"
)

// Feature announcement flags (Details.roles.<role>.features.<flag>).
const (
	FeatureProgressiveCallResults      = "progressive_call_results"
	FeatureProgressiveCallInvocations  = "progressive_call_invocations"
	FeatureCallTimeout                 = "call_timeout"
	FeatureCallCanceling               = "call_canceling"
	FeatureCallReroute                 = "call_reroute"
	FeatureCallerIdentification        = "caller_identification"
	FeatureRegistrationMetaAPI         = "registration_meta_api"
	FeaturePatternBasedRegistration    = "pattern_based_registration"
	FeatureSharedRegistration          = "shared_registration"
	FeatureSessionMetaAPI              = "session_meta_api"
	FeatureTestamentMetaAPI            = "testament_meta_api"
	FeaturePayloadPassthruMode         = "payload_passthru_mode"
	FeatureSubscriberBlackWhiteListing = "subscriber_blackwhite_listing"
	FeaturePublisherExclusion          = "publisher_exclusion"
	FeaturePublisherIdentification     = "publisher_identification"
	FeatureSubscriptionMetaAPI         = "subscription_meta_api"
	FeaturePatternBasedSubscription    = "pattern_based_subscription"
	FeatureEventRetention              = "event_retention"
)
